"""signalwise.runtime"""
