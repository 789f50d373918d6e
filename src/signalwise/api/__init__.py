"""signalwise.api"""
