package openbox.policy

require_approval {
input.operation.type == "AGENT_ACTION"
input.operation.metadata.custom_type == "payment_processing"
input.operation.metadata.amount > 100
}
