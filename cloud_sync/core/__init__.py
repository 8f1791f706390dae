"""Shared by the station and the cloud, pure: values in, values out.

No clock, no I/O, no storage, so a sale is priced, a plate read and an event validated the
same way wherever it happens.
"""
