"""The site front end: every coding with time on any eager model (Hugging Face decoders and
encoders, vision transformers, modern CNNs). The activation entering each weight-bearing operation
is a *site*, coded there by the coding's population over its own window; see
:mod:`isospike.conversion.sites.capture` (how sites are found), :mod:`~.network` (the converted
model, of the original's class), :mod:`~.build` (calibration and conversion) and :mod:`~.certify`
(a certificate row per site)."""

from isospike.conversion.sites.build import SiteStats, convert_sites, equivalent_sites
from isospike.conversion.sites.network import CodedNetwork

__all__ = ["CodedNetwork", "SiteStats", "convert_sites", "equivalent_sites"]
