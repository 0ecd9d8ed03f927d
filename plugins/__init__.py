"""The plugins that ship with pyvaccel: noop, numpy, pynq and rpc."""
