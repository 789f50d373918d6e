"""signalwise: safe adaptive traffic signal control on SUMO, measured."""

__version__ = "0.1.0"
