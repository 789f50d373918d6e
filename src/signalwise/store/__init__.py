"""signalwise.store"""
