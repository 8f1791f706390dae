"""Forecourt protocol library (Wayne DART, IFSF POS-FDC): links, framers, drivers, simulators.

Knows nothing of loyalty or storage; it turns dispenser traffic into `FuelSale` events.
"""
