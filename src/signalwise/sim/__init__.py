"""signalwise.sim"""
