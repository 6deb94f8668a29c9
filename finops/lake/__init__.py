"""The store as Hive-partitioned Parquet, read-only replicas over it, and the report SQL on Spark."""
