"""The worker's pipeline: validate, match known content, score, decide, build records, send."""
