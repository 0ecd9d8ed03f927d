"""`vaccel bench` / `make bench`: the remote path measured against same-run baselines
(`vaccel.cli.bench.main`); the baseline peers and the load generator run as modules."""
