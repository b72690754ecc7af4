//! A provider that keeps what it receives, for assertions.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use axion::model::{Observation, Record, Score, Trace};
use axion::{BaseTracer, MetadataType, RawRecord, Tracer};

#[derive(Default)]
pub struct Collector {
    records: Mutex<Vec<RawRecord>>,
}

impl BaseTracer for Collector {
    fn name(&self) -> &str {
        "collector"
    }
    fn export(&self, record: RawRecord) {
        self.records.lock().unwrap().push(record);
    }
}

impl Collector {
    pub fn records(&self) -> Vec<Record> {
        self.records
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .map(RawRecord::into_model)
            .collect()
    }

    pub fn observations(&self) -> Vec<Observation> {
        self.records()
            .into_iter()
            .filter_map(|record| match record {
                Record::Observation(observation) => Some(observation),
                _ => None,
            })
            .collect()
    }

    pub fn observation(&self, name: &str) -> Observation {
        let matches: Vec<_> = self
            .observations()
            .into_iter()
            .filter(|o| o.name.as_deref() == Some(name))
            .collect();
        assert_eq!(
            matches.len(),
            1,
            "expected one observation named {name}, got {matches:#?}"
        );
        matches.into_iter().next().unwrap()
    }

    pub fn traces(&self) -> Vec<Trace> {
        self.records()
            .into_iter()
            .filter_map(|record| match record {
                Record::Trace(trace) => Some(trace),
                _ => None,
            })
            .collect()
    }

    pub fn scores(&self) -> Vec<Score> {
        self.records()
            .into_iter()
            .filter_map(|record| match record {
                Record::Score(score) => Some(score),
                _ => None,
            })
            .collect()
    }
}

pub fn tracer(metadata_type: MetadataType) -> (Tracer, Arc<Collector>) {
    let collector = Arc::new(Collector::default());
    (
        Tracer::builder(metadata_type)
            .provider(collector.clone())
            .build(),
        collector,
    )
}
