"""The cloud: the chain ledger (`ledger`), its HTTP service (`server`) and HQ's command
line (`cli`)."""
