//! What the gate's tests share: a plain container's inputs and a restart
//! request for it.

use hemostat_protocol::{
    ContainerRef,
    gate::{ContainerFacts, GateInputs, GateRequest, GateSettings},
};

/// The inputs of a container without a policy, held or silence.
pub fn plain(settings: GateSettings) -> GateInputs {
    settings.inputs(&ContainerFacts::default())
}

/// A restart of `c` asked for with command id `id`.
pub fn request<'a>(c: &'a ContainerRef, id: &'a str, inputs: &'a GateInputs) -> GateRequest<'a> {
    GateRequest {
        container: c,
        command_id: id,
        action: "restart",
        reason: "exit 1",
        confidence: 0.9,
        dry_run: false,
        image: None,
        inputs,
    }
}
