"""signalwise.control"""
