"""`finops demo`: a realistic fleet fed through the real ingestion paths, then the service."""
