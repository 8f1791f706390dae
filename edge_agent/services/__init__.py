"""Station use cases: every change to members, sales and points goes through here.

Each function takes the open `Station` first and runs one store transaction, so a sale,
its points, its ledger entries and its outbox event commit together or not at all.
"""
