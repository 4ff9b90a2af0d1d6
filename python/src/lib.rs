//! The `c3d` Python package: the compiler, the plaintext fixed-point simulator and both
//! parties of a secure inference, as Python functions (built with maturin: `pip install
//! ./python`).
//!
//! Every failure raises `c3d.C3dError` with the Rust error's message, the one the command-line
//! tools print. The long calls (`compile`, `simulate`, `serve`, `infer`) release the GIL, so a
//! Python thread can serve while another runs the client.

mod convert;
mod party;
mod plans;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    c3d,
    C3dError,
    PyException,
    "A compilation, plan, simulation or session failed; the message says why, as the CLIs do."
);

/// The error of any `c3d` call, with `e`'s message.
pub(crate) fn error(e: impl std::fmt::Display) -> PyErr {
    C3dError::new_err(e.to_string())
}

/// Runs `f`, turning a panic into a `C3dError` instead of Python's `PanicException` (which
/// `except Exception` does not catch): a bug reached through bad input must not escape as one.
pub(crate) fn guarded<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        Err(error(format!(
            "internal error: {}",
            c3d_runtime::session::panic_text(&*p)
        )))
    })
}

/// The module `c3d`.
#[pymodule]
fn c3d(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("C3dError", m.py().get_type::<C3dError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(plans::compile, m)?)?;
    m.add_function(wrap_pyfunction!(plans::inspect, m)?)?;
    m.add_function(wrap_pyfunction!(plans::simulate, m)?)?;
    m.add_function(wrap_pyfunction!(party::serve, m)?)?;
    m.add_function(wrap_pyfunction!(party::infer, m)?)?;
    Ok(())
}
