//! `paysvc._native`: the Python binding of the paysvc core.
//!
//! This file only translates. Every argument is read into a plain [`Value`] (reading never
//! fails, never calls into the argument, and stops after [`MAX_VALUES`] values), the core
//! modules apply the rules, and a [`CoreError`] becomes the Python exception
//! `paysvc._native.CoreError`. No argument is kept past a call, the GIL is held throughout
//! (calls take microseconds), and a panic becomes `CoreError("internal_error")`.

pub mod currency;
pub mod errors;
pub mod fees;
pub mod fingerprint;
pub mod json_keys;
pub mod plans;
pub mod validate;
pub mod value;

use std::panic::{AssertUnwindSafe, catch_unwind};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyList, PyString, PyTuple};

use crate::errors::{CoreError, CoreResult, catch_panics, py_repr};
use crate::value::{MAX_DEPTH, MAX_VALUES, Value};

/// `CoreError(code, param, message)`: a rejected input. `str(error)` is the message.
///
/// The fields hold the Python strings they were given (any `str`, lone surrogates included), so
/// that building one from Python never fails on a `str`; the core's own errors hold UTF-8 text.
#[pyclass(extends = PyValueError, frozen, name = "CoreError", module = "paysvc._native")]
struct PyCoreError {
    #[pyo3(get)]
    code: Py<PyString>,
    #[pyo3(get)]
    param: Option<Py<PyString>>,
    #[pyo3(get)]
    message: Py<PyString>,
}

#[pymethods]
impl PyCoreError {
    #[new]
    #[pyo3(signature = (code, param, message))]
    fn new(
        code: Bound<'_, PyString>,
        param: Option<Bound<'_, PyString>>,
        message: Bound<'_, PyString>,
    ) -> Self {
        PyCoreError {
            code: code.unbind(),
            param: param.map(Bound::unbind),
            message: message.unbind(),
        }
    }

    /// Sets `args` to `(code, param, message)`; keyword arguments are accepted too.
    #[pyo3(signature = (code, param, message))]
    fn __init__(
        slf: &Bound<'_, Self>,
        code: Bound<'_, PyString>,
        param: Option<Bound<'_, PyString>>,
        message: Bound<'_, PyString>,
    ) -> PyResult<()> {
        slf.setattr("args", (code, param, message))
    }

    fn __str__(&self, py: Python<'_>) -> Py<PyString> {
        self.message.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        // `str.__repr__` itself: a subclass's own `__repr__` is not called.
        let repr = py.get_type::<PyString>().getattr("__repr__")?;
        let show =
            |s: &Py<PyString>| -> PyResult<String> { Ok(repr.call1((s,))?.str()?.to_string()) };
        let param = match &self.param {
            Some(p) => show(p)?,
            None => "None".to_owned(),
        };
        Ok(format!(
            "CoreError({}, {}, {})",
            show(&self.code)?,
            param,
            show(&self.message)?
        ))
    }
}

/// The Python exception for `error`, with `args == (code, param, message)`.
fn to_py_err(py: Python<'_>, error: CoreError) -> PyErr {
    let code = PyString::new(py, error.code);
    let param = error.param.as_deref().map(|p| PyString::new(py, p));
    let message = PyString::new(py, &error.message);
    let args = (code.clone(), param.clone(), message.clone());
    let exc = PyCoreError {
        code: code.unbind(),
        param: param.map(Bound::unbind),
        message: message.unbind(),
    };
    match Bound::new(py, exc) {
        Ok(obj) => match obj.setattr("args", args) {
            Ok(()) => PyErr::from_value(obj.into_any()),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

/// Runs a core call: its `CoreError` or a panic becomes a Python `CoreError`.
fn run<T>(py: Python<'_>, f: impl FnOnce() -> CoreResult<T>) -> PyResult<T> {
    catch_panics(f).map_err(|e| to_py_err(py, e))
}

/// Reads one argument into a [`Value`], at most [`MAX_VALUES`] values of it.
struct Reader {
    /// The containers being read: a container inside itself is `TooDeep`.
    open: Vec<*mut pyo3::ffi::PyObject>,
    /// How many more values may be read.
    left: usize,
    /// Set once a value was refused for want of budget: every container around it is `TooLarge`.
    exhausted: bool,
}

impl Reader {
    fn read(obj: &Bound<'_, PyAny>) -> Value {
        let mut reader = Reader {
            open: Vec::new(),
            left: MAX_VALUES,
            exhausted: false,
        };
        reader.value(obj, 0)
    }

    /// `depth` counts the containers around `obj`.
    fn value(&mut self, obj: &Bound<'_, PyAny>, depth: usize) -> Value {
        if self.left == 0 {
            self.exhausted = true;
            return Value::TooLarge;
        }
        self.left -= 1;
        if obj.is_none() {
            return Value::None;
        }
        if let Ok(b) = obj.cast::<PyBool>() {
            return Value::Bool(b.is_true());
        }
        if obj.is_instance_of::<PyInt>() {
            return obj.extract::<i64>().map_or(Value::BigInt, Value::Int);
        }
        if let Ok(s) = obj.cast::<PyString>() {
            return s
                .to_str()
                .map_or(Value::InvalidStr, |s| Value::Str(s.to_owned()));
        }
        let is_list = obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>();
        let dict = obj.cast::<PyDict>().ok();
        if !is_list && dict.is_none() {
            let name = obj
                .get_type()
                .name()
                .map_or_else(|_| "object".to_owned(), |n| n.to_string());
            return Value::Unsupported(name);
        }
        if depth >= MAX_DEPTH || self.open.contains(&obj.as_ptr()) {
            return Value::TooDeep;
        }
        self.open.push(obj.as_ptr());
        let value = if let Some(dict) = dict {
            let mut entries = Vec::with_capacity(dict.len().min(self.left));
            for (k, v) in dict.iter() {
                let key = self.value(&k, depth + 1);
                let item = self.value(&v, depth + 1);
                if self.exhausted {
                    break;
                }
                entries.push((key, item));
            }
            Value::Dict(entries)
        } else if let Ok(list) = obj.cast::<PyList>() {
            self.items(list.iter(), list.len(), depth)
        } else {
            let tuple = obj.cast::<PyTuple>().expect("checked above");
            self.items(tuple.iter(), tuple.len(), depth)
        };
        self.open.pop();
        if self.exhausted {
            Value::TooLarge
        } else {
            value
        }
    }

    fn items<'py>(
        &mut self,
        items: impl Iterator<Item = Bound<'py, PyAny>>,
        len: usize,
        depth: usize,
    ) -> Value {
        let mut values = Vec::with_capacity(len.min(self.left));
        for item in items {
            let value = self.value(&item, depth + 1);
            if self.exhausted {
                break;
            }
            values.push(value);
        }
        Value::List(values)
    }
}

/// An argument of any type, read into a [`Value`].
struct Arg(Value);

impl Arg {
    const NONE: Arg = Arg(Value::None);
}

impl<'a, 'py> FromPyObject<'a, 'py> for Arg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let read = catch_unwind(AssertUnwindSafe(|| Reader::read(&obj)));
        read.map(Arg)
            .map_err(|_| to_py_err(obj.py(), CoreError::internal()))
    }
}

fn metadata_dict<'py>(
    py: Python<'py>,
    entries: &[(String, String)],
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in entries {
        dict.set_item(k, v)?;
    }
    Ok(dict)
}

/// The number of decimal places of a currency's minor unit (`currency_invalid` if unknown).
#[pyfunction]
fn currency_exponent(py: Python<'_>, code: Arg) -> PyResult<u8> {
    run(py, || currency::exponent_value(&code.0, "currency"))
}

/// The upper-case ISO 4217 code (`currency_invalid` if unknown).
#[pyfunction]
fn normalize_currency(py: Python<'_>, code: Arg) -> PyResult<&'static str> {
    run(py, || currency::normalize_value(&code.0, "currency"))
}

/// `clamp(round_half_even(amount * percent_bps / 10000) + fixed, min, max)` in minor units.
#[pyfunction]
fn compute_fee(
    py: Python<'_>,
    amount_minor: Arg,
    percent_bps: Arg,
    fixed_minor: Arg,
    min_minor: Arg,
    max_minor: Arg,
) -> PyResult<i64> {
    run(py, || {
        fees::compute_fee(
            &amount_minor.0,
            &percent_bps.0,
            &fixed_minor.0,
            &min_minor.0,
            &max_minor.0,
        )
    })
}

/// Lower-case hex SHA-256 of `METHOD\npath\n` + the canonical JSON of `body`.
#[pyfunction(name = "fingerprint")]
fn py_fingerprint(py: Python<'_>, method: Arg, path: Arg, body: Arg) -> PyResult<String> {
    run(py, || {
        fingerprint::fingerprint_values(&method.0, &path.0, &body.0)
    })
}

/// Checks an Idempotency-Key header value (`None` when absent).
#[pyfunction]
fn check_idempotency_key(py: Python<'_>, key: Arg, required: Arg) -> PyResult<()> {
    run(py, || {
        let required = validate::bool_param(&required.0, "required")?;
        validate::check_idempotency_key_value(&key.0, required)
    })
}

/// The path of the first repeated object key in a JSON text (`bytes`), or `None`.
#[pyfunction]
fn first_duplicate_key(py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    run(py, || {
        let bytes = text.cast::<PyBytes>().map_err(|_| {
            CoreError::new(
                errors::code::PARAMETER_INVALID,
                Some("text"),
                "text must be bytes",
            )
        })?;
        Ok(json_keys::first_duplicate_key(bytes.as_bytes()))
    })
}

/// Checks metadata: at most 50 keys of 1..40 characters, string values of at most 500.
#[pyfunction]
fn validate_metadata(py: Python<'_>, metadata: Arg) -> PyResult<()> {
    run(py, || validate::validate_metadata(&metadata.0).map(drop))
}

/// A checked payment, ready for the ledger.
#[pyclass(frozen, name = "PaymentPlan", module = "paysvc._native")]
struct PyPaymentPlan(plans::PaymentPlan);

#[pymethods]
impl PyPaymentPlan {
    #[getter]
    fn amount(&self) -> i64 {
        self.0.amount
    }
    #[getter]
    fn currency(&self) -> &'static str {
        self.0.currency
    }
    #[getter]
    fn source(&self) -> &str {
        &self.0.source
    }
    #[getter]
    fn destination(&self) -> &str {
        &self.0.destination
    }
    #[getter]
    fn capture(&self) -> bool {
        self.0.capture
    }
    #[getter]
    fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// A new dict on every access.
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        metadata_dict(py, &self.0.metadata)
    }
    #[getter]
    fn expires_in_s(&self) -> Option<i64> {
        self.0.expires_in_s
    }
    #[getter]
    fn fee(&self) -> Option<i64> {
        self.0.fee
    }
    #[getter]
    fn net(&self) -> Option<i64> {
        self.0.net
    }
    #[getter]
    fn fingerprint(&self) -> &str {
        &self.0.fingerprint
    }
    fn __repr__(&self) -> String {
        let p = &self.0;
        format!(
            "PaymentPlan(amount={}, currency='{}', source={}, destination={}, capture={}, fee={}, \
             net={}, expires_in_s={})",
            p.amount,
            p.currency,
            py_repr(&p.source),
            py_repr(&p.destination),
            if p.capture { "True" } else { "False" },
            opt_repr(p.fee),
            opt_repr(p.net),
            opt_repr(p.expires_in_s),
        )
    }
}

fn opt_repr(v: Option<i64>) -> String {
    v.map_or("None".to_owned(), |v| v.to_string())
}

/// Checks a payment request; the first failure (in a fixed order) is raised as `CoreError`.
#[pyfunction]
#[pyo3(
    signature = (
        *, path, amount, currency, source, destination, capture = Arg(Value::Bool(true)),
        description = Arg::NONE, metadata = Arg::NONE, expires_in_s = Arg::NONE,
        fee_rule = Arg::NONE, idempotency_key = Arg::NONE,
        require_idempotency_key = Arg(Value::Bool(true))
    ),
    text_signature = "(*, path, amount, currency, source, destination, capture=True, description=None, metadata=None, expires_in_s=None, fee_rule=None, idempotency_key=None, require_idempotency_key=True)"
)]
#[allow(clippy::too_many_arguments)]
fn prepare_payment(
    py: Python<'_>,
    path: Arg,
    amount: Arg,
    currency: Arg,
    source: Arg,
    destination: Arg,
    capture: Arg,
    description: Arg,
    metadata: Arg,
    expires_in_s: Arg,
    fee_rule: Arg,
    idempotency_key: Arg,
    require_idempotency_key: Arg,
) -> PyResult<PyPaymentPlan> {
    let request = plans::PaymentRequest {
        path: path.0,
        amount: amount.0,
        currency: currency.0,
        source: source.0,
        destination: destination.0,
        capture: capture.0,
        description: description.0,
        metadata: metadata.0,
        expires_in_s: expires_in_s.0,
        fee_rule: fee_rule.0,
        idempotency_key: idempotency_key.0,
        require_idempotency_key: require_idempotency_key.0,
    };
    run(py, || plans::prepare_payment(&request)).map(PyPaymentPlan)
}

/// The fee of capturing `amount_minor` under `fee_rule` (`(percent_bps, fixed, min, max)` or
/// `None` for no fee).
#[pyfunction]
fn settle_fee(py: Python<'_>, amount_minor: Arg, fee_rule: Arg) -> PyResult<i64> {
    run(py, || plans::settle_fee(&amount_minor.0, &fee_rule.0))
}

/// A checked capture of a hold.
#[pyclass(frozen, name = "CapturePlan", module = "paysvc._native")]
struct PyCapturePlan(plans::CapturePlan);

#[pymethods]
impl PyCapturePlan {
    /// `None` to capture the whole authorized amount.
    #[getter]
    fn amount(&self) -> Option<i64> {
        self.0.amount
    }
    #[getter]
    fn fingerprint(&self) -> &str {
        &self.0.fingerprint
    }
    fn __repr__(&self) -> String {
        format!("CapturePlan(amount={})", opt_repr(self.0.amount))
    }
}

/// Checks a capture request; the first failure (in a fixed order) is raised as `CoreError`.
#[pyfunction]
#[pyo3(
    signature = (*, path, amount = Arg::NONE, idempotency_key = Arg::NONE),
    text_signature = "(*, path, amount=None, idempotency_key=None)"
)]
fn prepare_capture(
    py: Python<'_>,
    path: Arg,
    amount: Arg,
    idempotency_key: Arg,
) -> PyResult<PyCapturePlan> {
    let request = plans::CaptureRequest {
        path: path.0,
        amount: amount.0,
        idempotency_key: idempotency_key.0,
    };
    run(py, || plans::prepare_capture(&request)).map(PyCapturePlan)
}

/// A checked cancellation of a hold.
#[pyclass(frozen, name = "CancelPlan", module = "paysvc._native")]
struct PyCancelPlan(plans::CancelPlan);

#[pymethods]
impl PyCancelPlan {
    #[getter]
    fn reason(&self) -> &'static str {
        self.0.reason
    }
    #[getter]
    fn fingerprint(&self) -> &str {
        &self.0.fingerprint
    }
    fn __repr__(&self) -> String {
        format!("CancelPlan(reason='{}')", self.0.reason)
    }
}

/// Checks a cancellation request; the first failure (in a fixed order) is raised as `CoreError`.
#[pyfunction]
#[pyo3(
    signature = (*, path, reason = Arg::NONE, idempotency_key = Arg::NONE),
    text_signature = "(*, path, reason=None, idempotency_key=None)"
)]
fn prepare_cancel(
    py: Python<'_>,
    path: Arg,
    reason: Arg,
    idempotency_key: Arg,
) -> PyResult<PyCancelPlan> {
    let request = plans::CancelRequest {
        path: path.0,
        reason: reason.0,
        idempotency_key: idempotency_key.0,
    };
    run(py, || plans::prepare_cancel(&request)).map(PyCancelPlan)
}

/// A checked refund.
#[pyclass(frozen, name = "RefundPlan", module = "paysvc._native")]
struct PyRefundPlan(plans::RefundPlan);

#[pymethods]
impl PyRefundPlan {
    /// `None` to refund all that is left.
    #[getter]
    fn amount(&self) -> Option<i64> {
        self.0.amount
    }
    /// A new dict on every access.
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        metadata_dict(py, &self.0.metadata)
    }
    #[getter]
    fn fingerprint(&self) -> &str {
        &self.0.fingerprint
    }
    fn __repr__(&self) -> String {
        format!("RefundPlan(amount={})", opt_repr(self.0.amount))
    }
}

/// Checks a refund request; the first failure (in a fixed order) is raised as `CoreError`.
#[pyfunction]
#[pyo3(
    signature = (
        *, path, amount = Arg::NONE, metadata = Arg::NONE, idempotency_key = Arg::NONE,
        require_idempotency_key = Arg(Value::Bool(true))
    ),
    text_signature = "(*, path, amount=None, metadata=None, idempotency_key=None, require_idempotency_key=True)"
)]
fn prepare_refund(
    py: Python<'_>,
    path: Arg,
    amount: Arg,
    metadata: Arg,
    idempotency_key: Arg,
    require_idempotency_key: Arg,
) -> PyResult<PyRefundPlan> {
    let request = plans::RefundRequest {
        path: path.0,
        amount: amount.0,
        metadata: metadata.0,
        idempotency_key: idempotency_key.0,
        require_idempotency_key: require_idempotency_key.0,
    };
    run(py, || plans::prepare_refund(&request)).map(PyRefundPlan)
}

/// A checked account creation.
#[pyclass(frozen, name = "AccountPlan", module = "paysvc._native")]
struct PyAccountPlan(plans::AccountPlan);

#[pymethods]
impl PyAccountPlan {
    #[getter]
    fn currency(&self) -> &'static str {
        self.0.currency
    }
    #[getter]
    fn allow_negative(&self) -> bool {
        self.0.allow_negative
    }
    /// A new dict on every access.
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        metadata_dict(py, &self.0.metadata)
    }
    #[getter]
    fn fingerprint(&self) -> &str {
        &self.0.fingerprint
    }
    fn __repr__(&self) -> String {
        format!(
            "AccountPlan(currency='{}', allow_negative={})",
            self.0.currency,
            if self.0.allow_negative {
                "True"
            } else {
                "False"
            }
        )
    }
}

/// Checks an account creation request.
#[pyfunction]
#[pyo3(
    signature = (
        *, currency, allow_negative = Arg(Value::Bool(false)), metadata = Arg::NONE,
        idempotency_key = Arg::NONE
    ),
    text_signature = "(*, currency, allow_negative=False, metadata=None, idempotency_key=None)"
)]
fn prepare_account(
    py: Python<'_>,
    currency: Arg,
    allow_negative: Arg,
    metadata: Arg,
    idempotency_key: Arg,
) -> PyResult<PyAccountPlan> {
    let request = plans::AccountRequest {
        currency: currency.0,
        allow_negative: allow_negative.0,
        metadata: metadata.0,
        idempotency_key: idempotency_key.0,
    };
    run(py, || plans::prepare_account(&request)).map(PyAccountPlan)
}

/// One rule of a fee schedule.
#[pyclass(frozen, name = "FeeRule", module = "paysvc._native")]
struct PyFeeRule(plans::ScheduleRule);

#[pymethods]
impl PyFeeRule {
    #[getter]
    fn currency(&self) -> &'static str {
        self.0.currency
    }
    #[getter]
    fn percent_bps(&self) -> i64 {
        self.0.rule.percent_bps
    }
    #[getter]
    fn fixed(&self) -> i64 {
        self.0.rule.fixed
    }
    #[getter]
    fn min(&self) -> Option<i64> {
        self.0.rule.min
    }
    #[getter]
    fn max(&self) -> Option<i64> {
        self.0.rule.max
    }
    fn __repr__(&self) -> String {
        let r = &self.0.rule;
        format!(
            "FeeRule(currency='{}', percent_bps={}, fixed={}, min={}, max={})",
            self.0.currency,
            r.percent_bps,
            r.fixed,
            opt_repr(r.min),
            opt_repr(r.max)
        )
    }
}

/// Checks a fee schedule of `(currency, percent_bps, fixed, min, max)` rules; sorted by currency.
#[pyfunction]
fn prepare_fee_schedule(py: Python<'_>, rules: Arg) -> PyResult<Vec<PyFeeRule>> {
    run(py, || plans::prepare_fee_schedule(&rules.0))
        .map(|v| v.into_iter().map(PyFeeRule).collect())
}

/// Panics inside the core, to show that a panic reaches Python as `CoreError("internal_error")`.
#[pyfunction]
fn _panic_for_tests(py: Python<'_>) -> PyResult<()> {
    run(py, || -> CoreResult<()> {
        panic!("deliberate panic for tests")
    })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCoreError>()?;
    m.add_class::<PyPaymentPlan>()?;
    m.add_class::<PyAccountPlan>()?;
    m.add_class::<PyFeeRule>()?;
    m.add_class::<PyCapturePlan>()?;
    m.add_class::<PyCancelPlan>()?;
    m.add_class::<PyRefundPlan>()?;
    m.add("MAX_AMOUNT_MINOR", fees::MAX_AMOUNT_MINOR)?;
    m.add("MAX_EXPIRES_IN_S", plans::MAX_EXPIRES_IN_S)?;
    m.add("MIN_EXPIRES_IN_S", plans::MIN_EXPIRES_IN_S)?;
    m.add("DEFAULT_EXPIRES_IN_S", plans::DEFAULT_EXPIRES_IN_S)?;
    m.add(
        "CANCELLATION_REASONS",
        PyTuple::new(m.py(), plans::CANCELLATION_REASONS)?,
    )?;
    m.add_function(wrap_pyfunction!(currency_exponent, m)?)?;
    m.add_function(wrap_pyfunction!(normalize_currency, m)?)?;
    m.add_function(wrap_pyfunction!(compute_fee, m)?)?;
    m.add_function(wrap_pyfunction!(py_fingerprint, m)?)?;
    m.add_function(wrap_pyfunction!(check_idempotency_key, m)?)?;
    m.add_function(wrap_pyfunction!(validate_metadata, m)?)?;
    m.add_function(wrap_pyfunction!(first_duplicate_key, m)?)?;
    m.add_function(wrap_pyfunction!(prepare_payment, m)?)?;
    m.add_function(wrap_pyfunction!(settle_fee, m)?)?;
    m.add_function(wrap_pyfunction!(prepare_capture, m)?)?;
    m.add_function(wrap_pyfunction!(prepare_cancel, m)?)?;
    m.add_function(wrap_pyfunction!(prepare_refund, m)?)?;
    m.add_function(wrap_pyfunction!(prepare_account, m)?)?;
    m.add_function(wrap_pyfunction!(prepare_fee_schedule, m)?)?;
    // Private: set as an attribute so that it stays out of `__all__`.
    m.setattr("_panic_for_tests", wrap_pyfunction!(_panic_for_tests, m)?)?;
    Ok(())
}
