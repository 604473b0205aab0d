//! Every error says each cause once: printed with its `source()` chain (as
//! `anyhow` and most loggers do), no message repeats its cause.

use std::error::Error;

use webhook_inbox::{OpenError, OperatorError, StoreError, WorkerError};

/// The error and its sources, joined as a logger would print them.
fn chain(e: &dyn Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

fn disk_full() -> std::io::Error {
    std::io::Error::other("no space left on device")
}

#[test]
fn each_cause_is_said_once() {
    let errors: Vec<Box<dyn Error>> = vec![
        Box::new(StoreError::Io(disk_full())),
        Box::new(WorkerError::Store(StoreError::Io(disk_full()))),
        Box::new(OperatorError::from(StoreError::Io(disk_full()))),
        Box::new(OpenError::Io {
            path: "/var/lib/hooks".into(),
            error: disk_full(),
        }),
        Box::new(webhook_inbox::IngestError::Storage(StoreError::Io(
            disk_full(),
        ))),
    ];
    for e in &errors {
        let text = chain(e.as_ref());
        assert_eq!(text.matches("no space left on device").count(), 1, "{text}");
    }
    assert!(matches!(
        OperatorError::from(StoreError::Closed),
        OperatorError::Closed
    ));
}
