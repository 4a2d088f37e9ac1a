"""SpikingGamma on the digits read row by row: sigma-delta neurons with gamma memory, trained by
plain backpropagation (no surrogate gradient), defined in milliseconds so one set of weights runs
at any time step (the README's SpikingGamma block).

    python examples/spiking_gamma_digits.py     # 20 epochs, 1-2 s each on 2 idle cores (far slower on shared cores)
"""

import isospike as isp
from isospike.data import load_digits
from isospike.data.sequences import rows_as_frames

data = load_digits()
net = isp.models.SpikingGammaNet(8, [64, 64], 10, K=4)  # rows of 8 pixels in, 10 classes out
isp.train.spiking_gamma(net, (rows_as_frames(data.train.x), data.train.y), epochs=20, mode="online")
for dt in (1.0, 0.25):  # trained at 1 ms; the same weights at a 4x finer step
    res = isp.train.evaluate_sequences(net, (rows_as_frames(data.test.x), data.test.y), dt_ms=dt)
    print(f"dt = {dt} ms: {res}")
