//! What the emulator's front ends share: the loaded functions by name, the region
//! and account they run in, the schedule settings, and who may call. The emulator builds it
//! once; the Invoke API, the Runtime API, function URLs and schedules read it.

use std::{collections::BTreeMap, sync::Arc};

use crate::{access::Access, config::ScheduleOverrides, function::Function};

/// State shared by all HTTP handlers and schedules.
pub struct Shared {
    functions: BTreeMap<String, Arc<Function>>,
    region: String,
    account_id: String,
    schedules: ScheduleOverrides,
    access: Access,
}

impl Shared {
    /// `functions` by their names.
    pub fn new(
        functions: BTreeMap<String, Arc<Function>>,
        region: String,
        account_id: String,
        schedules: ScheduleOverrides,
        access: Access,
    ) -> Shared {
        Shared { functions, region, account_id, schedules, access }
    }

    pub fn function(&self, name: &str) -> Option<Arc<Function>> {
        self.functions.get(name).cloned()
    }

    /// Every loaded function, in name order.
    pub fn functions(&self) -> impl Iterator<Item = &Arc<Function>> {
        self.functions.values()
    }

    pub fn arn(&self, name: &str) -> String {
        arn(&self.region, &self.account_id, name)
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    pub fn schedules(&self) -> &ScheduleOverrides {
        &self.schedules
    }

    /// Who may call the main listener.
    pub fn access(&self) -> &Access {
        &self.access
    }
}

pub fn arn(region: &str, account_id: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account_id}:function:{name}")
}
