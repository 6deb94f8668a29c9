"""AWS: Cost Explorer, Data Exports (CUR 2.0 / FOCUS) in S3, and the EC2 GPU inventory."""
