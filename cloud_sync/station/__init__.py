"""The station's side of sync: `client` speaks the cloud's HTTP API, `engine` runs
push-then-pull cycles through `port.SyncPort`, which the station's store implements."""
