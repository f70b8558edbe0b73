"""The Ray side of rayflow: the cluster connection, the dispatcher, step pools, the context actor and the stream."""
