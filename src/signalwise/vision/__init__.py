"""signalwise.vision"""
