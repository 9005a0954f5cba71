package openbox.policy

# Allow all read operations
allow {
input.operation.type == "DATABASE_READ"
}

# Require approval for external calls
require_approval {
input.operation.type == "EXTERNAL_API_CALL"
}

# Block file writes for low-trust agents
deny {
input.operation.type == "FILE_WRITE"
input.agent.trust_tier >= 3
}
