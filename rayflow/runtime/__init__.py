"""The Ray side of rayflow: an instance's actors (dispatcher, step workers, context actor), the driver's side of runs,
and the cluster connection. Each actor is a typed client around a private class."""
