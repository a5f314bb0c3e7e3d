from importlib.metadata import version as _version, PackageNotFoundError as _PNF
try: __version__ = _version('fastmix')
except _PNF: __version__ = 'unknown'  # imported from a checkout that was never installed
