"""The operator's commands (`refunds`, `batches`, `dead-letters`): where their data comes from, how it is shown."""
