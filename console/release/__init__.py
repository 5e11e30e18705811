"""Release: one path per act (approve, promote, rollback), approvals policy, audit."""
