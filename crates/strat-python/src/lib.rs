//! `strat._strat`, the native module of the Python package `strat`: rule
//! files checked, run, explained and exported as SQL from Python, with the
//! engine the command line uses. Tables come as paths (strat scans them) or
//! as any object with the Arrow PyCapsule interface (read once, zero-copy
//! where the producer allows); the sample goes back the same way. The
//! Python layer (`python/strat/__init__.py`) adds the error class and the
//! pandas/Polars conveniences.

use std::sync::OnceLock;
use std::time::Duration;

use pyo3::prelude::*;

mod diagnostics;
mod inputs;
mod rules;
mod sample;

/// One tokio runtime for the process: every call runs on it.
fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strat")
        .build()
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(format!("cannot start: {e}")))?;
    Ok(RUNTIME.get_or_init(|| rt))
}

/// Runs `work` on the runtime without the GIL, looking for signals (Ctrl-C)
/// every 50 ms: an interrupt cancels the work and raises KeyboardInterrupt.
fn block_on<T: Send + 'static>(
    py: Python<'_>,
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> PyResult<T> {
    let handle = runtime()?.spawn(work);
    let abort = handle.abort_handle();
    let (tx, rx) = std::sync::mpsc::channel();
    // Waited on without the GIL, from another thread's point of view.
    let rx = std::sync::Mutex::new(rx);
    runtime()?.spawn(async move {
        let _ = tx.send(handle.await);
    });
    loop {
        let got = py.detach(|| {
            let rx = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            rx.recv_timeout(Duration::from_millis(50))
        });
        match got {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                    "a strat task stopped: {e} (an internal error)"
                )));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Err(interrupt) = py.check_signals() {
                    abort.abort();
                    return Err(interrupt);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "a strat task was cancelled",
                ));
            }
        }
    }
}

#[pymodule]
fn _strat(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<diagnostics::Diagnostic>()?;
    m.add_class::<rules::Rules>()?;
    m.add_class::<sample::Sample>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
