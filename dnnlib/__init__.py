"""What EDM users reach for from EDM's dnnlib: `EasyDict` and `util.open_url` (local paths, file:// and
http(s):// URLs with a download cache). Nothing else of EDM's dnnlib: pickled code is never run here, so
its object-construction helpers have no use."""

from dnnlib.util import EasyDict, make_cache_dir_path

__all__ = ["EasyDict", "make_cache_dir_path"]
