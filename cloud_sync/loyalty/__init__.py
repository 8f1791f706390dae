"""Pure loyalty core shared by the station agent and the cloud ledger.

No clock, no I/O, no storage: values in, values out. Both sides import these modules so a
sale is priced identically wherever it is computed.
"""
