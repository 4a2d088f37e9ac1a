"""The HTML report renders in a real browser (headless Chromium; skipped when it is absent --
.ci/run installs Debian's chromium)."""

import shutil
import subprocess

import numpy as np
import pytest

from isospike.report.document import Document

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")
def test_html_report_renders_tables_and_embedded_plot(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar([0, 1], [1, 2], color="tab:red")
    fig.savefig(tmp_path / "plot.png")
    plt.close(fig)
    doc = Document("browser check")
    doc.paragraph("a **bold** claim with `code`").table(["layer", "holds"], [["0", "yes"], ["1", "NO"]])
    doc.image("plot.png", "a red bar chart")
    _, page = doc.write(tmp_path)
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=900,1200", f"--screenshot={shot}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    img = plt.imread(str(shot))[..., :3]
    assert img.shape[0] >= 1000 and img.shape[1] >= 800
    red = (img[..., 0] > 0.7) & (img[..., 1] < 0.3) & (img[..., 2] < 0.3)
    assert red.sum() > 2000  # the embedded plot was decoded and drawn
    assert (img.std(axis=(0, 1)) > 0.05).all()  # not a blank page
    assert np.isfinite(img).all()
