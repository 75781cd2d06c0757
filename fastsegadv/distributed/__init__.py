"""What training and evaluation both need to run on several processes, below both: the distributed context
and its collectives (:mod:`.context`), and batch sharding, collation and the sharded clean confusion
matrix (:mod:`.sharding`)."""
from .context import DistContext, all_gather_objects, all_reduce_sum, init_distributed, shutdown
from .sharding import batch_ranges, clean_confusion, collate, stack_items

__all__ = ["DistContext", "init_distributed", "shutdown", "all_reduce_sum", "all_gather_objects", "batch_ranges",
           "collate", "stack_items", "clean_confusion"]
