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
pub mod plans;
pub mod risk;
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

// ---- Risk (BRIEF §8): thin wrappers over `risk::*`. Arguments are typed (these are called by
// the service itself, never with client JSON); every call runs under `run`, so a panic is a
// `CoreError("internal_error")`.

/// An argument of a risk function: `bytes` kept as bytes, anything else read into a [`Value`].
struct RiskArg(risk::input::Input);

impl<'a, 'py> FromPyObject<'a, 'py> for RiskArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let read = catch_unwind(AssertUnwindSafe(|| match obj.cast_exact::<PyBytes>() {
            Ok(b) => risk::input::Input::Bytes(b.as_bytes().to_vec()),
            Err(_) => risk::input::Input::Value(Reader::read(&obj)),
        }));
        read.map(RiskArg)
            .map_err(|_| to_py_err(obj.py(), CoreError::internal()))
    }
}

/// The metadata of `assess` (typed: the service passes a checked payment's dict).
fn str_pairs(metadata: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<(String, String)>> {
    let Some(d) = metadata else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        out.push((k.extract::<String>()?, v.extract::<String>()?));
    }
    Ok(out)
}

/// The names of the features `risk_features` returns, in order.
#[pyfunction]
fn risk_feature_names() -> Vec<&'static str> {
    risk::features::FEATURE_NAMES.to_vec()
}

/// The feature vector of one payment (the function training and serving share).
#[pyfunction]
#[pyo3(signature = (
    amount_minor, currency, capture, source_id, destination_id, source_state,
    source_created_at_s, destination_state, destination_created_at_s, now_s, metadata
))]
#[allow(clippy::too_many_arguments)]
fn risk_features(
    py: Python<'_>,
    amount_minor: RiskArg,
    currency: RiskArg,
    capture: RiskArg,
    source_id: RiskArg,
    destination_id: RiskArg,
    source_state: RiskArg,
    source_created_at_s: RiskArg,
    destination_state: RiskArg,
    destination_created_at_s: RiskArg,
    now_s: RiskArg,
    metadata: RiskArg,
) -> PyResult<Vec<f64>> {
    use risk::input::{bool_of, bytes_of, int_of, metadata_of, opt_bytes_of, str_of};
    run(py, || {
        let p = risk::features::Payment {
            amount_minor: int_of(&amount_minor.0, "amount_minor")?,
            capture: bool_of(&capture.0, "capture")?,
            source_id: bytes_of(&source_id.0, "source_id")?,
            destination_id: bytes_of(&destination_id.0, "destination_id")?,
            source_created_at_s: int_of(&source_created_at_s.0, "source_created_at_s")?,
            destination_created_at_s: int_of(
                &destination_created_at_s.0,
                "destination_created_at_s",
            )?,
            now_s: int_of(&now_s.0, "now_s")?,
        };
        // Neither currency nor metadata is a feature today; they are checked and in the
        // signature so that one can become one without changing every caller.
        str_of(&currency.0, "currency")?;
        metadata_of(&metadata.0)?;
        let source_state = opt_bytes_of(&source_state.0, "source_state")?;
        let destination_state = opt_bytes_of(&destination_state.0, "destination_state")?;
        Ok(risk::features::features_of(&p, source_state, destination_state).to_vec())
    })
}

/// The account's risk state after one more payment (as its source or its destination).
#[pyfunction]
#[pyo3(signature = (state, now_s, *, as_source, counterparty_id, amount_minor, outcome))]
fn risk_state_record<'py>(
    py: Python<'py>,
    state: RiskArg,
    now_s: RiskArg,
    as_source: RiskArg,
    counterparty_id: RiskArg,
    amount_minor: RiskArg,
    outcome: RiskArg,
) -> PyResult<Bound<'py, PyBytes>> {
    use risk::input::{bool_of, bytes_of, int_of, opt_bytes_of, str_of};
    let encoded = run(py, || {
        let state = opt_bytes_of(&state.0, "state")?;
        let now_s = int_of(&now_s.0, "now_s")?;
        let as_source = bool_of(&as_source.0, "as_source")?;
        let counterparty_id = bytes_of(&counterparty_id.0, "counterparty_id")?;
        let amount_minor = int_of(&amount_minor.0, "amount_minor")?;
        let outcome =
            risk::state::Outcome::parse(str_of(&outcome.0, "outcome")?).ok_or_else(|| {
                CoreError::parameter(
                    Some("outcome"),
                    "outcome must be 'authorized', 'declined' or 'blocked'.",
                )
            })?;
        let mut s = risk::state::State::decode(state);
        s.record(now_s, as_source, counterparty_id, amount_minor, outcome);
        Ok(s.encode())
    })?;
    Ok(PyBytes::new(py, &encoded))
}

/// Summary of a state, for tests and debugging: `{"corrupt", "out_total", ...}`.
#[pyfunction]
fn _risk_state_summary<'py>(
    py: Python<'py>,
    state: Option<&[u8]>,
    now_s: i64,
) -> PyResult<Bound<'py, PyDict>> {
    let s = risk::state::State::decode(state);
    let m = risk::state::minute_of(now_s);
    let d = PyDict::new(py);
    let out_h = risk::state::window(&s.out, m, risk::state::MINUTES_PER_HOUR);
    let out_d = risk::state::window(&s.out, m, risk::state::MINUTES_PER_DAY);
    let in_h = risk::state::window(&s.inbound, m, risk::state::MINUTES_PER_HOUR);
    let in_d = risk::state::window(&s.inbound, m, risk::state::MINUTES_PER_DAY);
    d.set_item("corrupt", s.corrupt)?;
    d.set_item("out_total", s.out_total)?;
    d.set_item("in_total", s.in_total)?;
    d.set_item("out_buckets", s.out.len())?;
    d.set_item("in_buckets", s.inbound.len())?;
    d.set_item("payments_hour", out_h.count)?;
    d.set_item("payments_day", out_d.count)?;
    d.set_item("amount_day", out_d.amount)?;
    d.set_item("declines_day", out_d.declines)?;
    d.set_item("inbound_hour", in_h.count)?;
    d.set_item("inbound_day", in_d.count)?;
    d.set_item("destinations", s.destinations.len())?;
    d.set_item("sources", s.sources.len())?;
    d.set_item("max_encoded_len", risk::state::MAX_ENCODED_LEN)?;
    Ok(d)
}

/// A loaded, validated risk model.
#[pyclass(frozen, name = "RiskModel", module = "paysvc._native")]
struct PyRiskModel(std::sync::Arc<risk::model::Model>);

fn feature_array(features: &[f64]) -> CoreResult<[f64; risk::features::N_FEATURES]> {
    features.try_into().map_err(|_| {
        CoreError::parameter(
            Some("features"),
            format!(
                "features must hold {} numbers, not {}",
                risk::features::N_FEATURES,
                features.len()
            ),
        )
    })
}

#[pymethods]
impl PyRiskModel {
    /// Parses and validates a model file; `CoreError("model_invalid")` says what is wrong.
    #[staticmethod]
    fn load(py: Python<'_>, data: &[u8]) -> PyResult<PyRiskModel> {
        run(py, || {
            risk::model::Model::load(data)
                .map(|m| PyRiskModel(std::sync::Arc::new(m)))
                .map_err(|m| CoreError::new(errors::code::MODEL_INVALID, None, m))
        })
    }
    #[getter]
    fn id(&self) -> &str {
        &self.0.id
    }
    #[getter]
    fn kind(&self) -> &'static str {
        self.0.kind_name
    }
    #[getter]
    fn features(&self) -> Vec<&'static str> {
        risk::features::FEATURE_NAMES.to_vec()
    }
    #[getter]
    fn metrics_json(&self) -> &str {
        &self.0.metrics_json
    }
    #[getter]
    fn created_at(&self) -> &str {
        &self.0.created_at
    }
    fn probability(&self, py: Python<'_>, features: Vec<f64>) -> PyResult<f64> {
        run(py, || Ok(self.0.probability(&feature_array(&features)?)))
    }
    fn score(&self, py: Python<'_>, features: Vec<f64>) -> PyResult<u8> {
        run(py, || Ok(self.0.score(&feature_array(&features)?)))
    }
    fn __repr__(&self) -> String {
        format!(
            "RiskModel(id={}, kind='{}')",
            py_repr(&self.0.id),
            self.0.kind_name
        )
    }
}

/// Checks rule predicates; the first bad one raises `CoreError("parameter_invalid",
/// "rules[i].predicate", ...)`.
#[pyfunction]
fn risk_rules_check(py: Python<'_>, predicates: RiskArg) -> PyResult<()> {
    run(py, || {
        risk::decide::check_predicates(risk::input::predicates_of(&predicates.0)?)
    })
}

/// One tenant's risk policy, built once per configuration and used for every payment.
#[pyclass(frozen, name = "RiskPolicy", module = "paysvc._native")]
struct PyRiskPolicy(risk::decide::Policy);

/// The outcome of assessing one payment.
#[pyclass(frozen, name = "RiskAssessment", module = "paysvc._native")]
struct PyRiskAssessment {
    #[pyo3(get)]
    decision: &'static str,
    #[pyo3(get)]
    risk_score: Option<u8>,
    #[pyo3(get)]
    risk_level: &'static str,
    #[pyo3(get)]
    reason: Option<&'static str>,
    #[pyo3(get)]
    rule_index: Option<usize>,
    #[pyo3(get)]
    model: Option<String>,
    #[pyo3(get)]
    arm: Option<&'static str>,
    #[pyo3(get)]
    shadow_scores: Vec<(String, u8)>,
    #[pyo3(get)]
    features: Vec<f64>,
}

#[pymethods]
impl PyRiskAssessment {
    fn __repr__(&self) -> String {
        format!(
            "RiskAssessment(decision='{}', risk_score={}, risk_level='{}', reason={}, rule_index={}, \
             model={}, arm={})",
            self.decision,
            self.risk_score.map_or("None".to_owned(), |s| s.to_string()),
            self.risk_level,
            self.reason.map_or("None".to_owned(), |r| format!("'{r}'")),
            self.rule_index.map_or("None".to_owned(), |i| i.to_string()),
            self.model.as_deref().map_or("None".to_owned(), py_repr),
            self.arm.map_or("None".to_owned(), |a| format!("'{a}'")),
        )
    }
}

/// Most shadow models a policy scores.
const MAX_SHADOWS: usize = 10;

/// `None` or a `RiskModel` (checked by type alone: nothing of the object is called).
fn model_arg(
    obj: &Bound<'_, PyAny>,
    param: &str,
) -> CoreResult<Option<std::sync::Arc<risk::model::Model>>> {
    if obj.is_none() {
        return Ok(None);
    }
    obj.cast_exact::<PyRiskModel>()
        .map(|m| Some(std::sync::Arc::clone(&m.get().0)))
        .map_err(|_| {
            CoreError::parameter(Some(param), format!("{param} must be a RiskModel or None."))
        })
}

fn shadows_arg(obj: &Bound<'_, PyAny>) -> CoreResult<Vec<std::sync::Arc<risk::model::Model>>> {
    let items: Vec<Bound<'_, PyAny>> = if let Ok(list) = obj.cast::<PyList>() {
        if list.len() > MAX_SHADOWS {
            return Err(CoreError::parameter(
                Some("shadows"),
                format!("at most {MAX_SHADOWS} shadow models."),
            ));
        }
        list.iter().collect()
    } else if let Ok(tuple) = obj.cast::<PyTuple>() {
        if tuple.len() > MAX_SHADOWS {
            return Err(CoreError::parameter(
                Some("shadows"),
                format!("at most {MAX_SHADOWS} shadow models."),
            ));
        }
        tuple.iter().collect()
    } else {
        return Err(CoreError::parameter(
            Some("shadows"),
            "shadows must be a list of RiskModel.",
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            model_arg(m, &format!("shadows[{i}]"))?.ok_or_else(|| {
                CoreError::parameter(
                    Some(&format!("shadows[{i}]")),
                    format!("shadows[{i}] must be a RiskModel."),
                )
            })
        })
        .collect()
}

#[pymethods]
impl PyRiskPolicy {
    #[new]
    #[pyo3(signature = (
        *, tenant_id, mode, elevated, highest, rules, champion, challenger, challenger_percent,
        challenger_id, shadows
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        tenant_id: RiskArg,
        mode: RiskArg,
        elevated: RiskArg,
        highest: RiskArg,
        rules: RiskArg,
        champion: Bound<'_, PyAny>,
        challenger: Bound<'_, PyAny>,
        challenger_percent: RiskArg,
        challenger_id: RiskArg,
        shadows: Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        use risk::input::{bytes_of, int_of, opt_str_of, rules_of, str_of};
        run(py, || {
            let rules = rules_of(&rules.0)?;
            let config = risk::decide::PolicyConfig {
                tenant_id: bytes_of(&tenant_id.0, "tenant_id")?,
                mode: str_of(&mode.0, "mode")?,
                elevated: int_of(&elevated.0, "elevated")?,
                highest: int_of(&highest.0, "highest")?,
                rules: &rules,
                champion: model_arg(&champion, "champion")?,
                challenger: model_arg(&challenger, "challenger")?,
                challenger_percent: int_of(&challenger_percent.0, "challenger_percent")?,
                challenger_id: opt_str_of(&challenger_id.0, "challenger_id")?.map(str::to_owned),
                shadows: shadows_arg(&shadows)?,
            };
            risk::decide::Policy::new(config)
        })
        .map(PyRiskPolicy)
    }

    #[pyo3(signature = (
        *, amount_minor, currency, capture, source, destination, source_id, destination_id,
        metadata, source_state, source_created_at_s, destination_state, destination_created_at_s,
        now_s
    ))]
    #[allow(clippy::too_many_arguments)]
    fn assess(
        &self,
        py: Python<'_>,
        amount_minor: i64,
        currency: &str,
        capture: bool,
        source: &str,
        destination: &str,
        source_id: &[u8],
        destination_id: &[u8],
        metadata: Option<Bound<'_, PyDict>>,
        source_state: Option<&[u8]>,
        source_created_at_s: i64,
        destination_state: Option<&[u8]>,
        destination_created_at_s: i64,
        now_s: i64,
    ) -> PyResult<PyRiskAssessment> {
        let metadata = str_pairs(metadata.as_ref())?;
        run(py, || {
            let r = risk::decide::Request {
                amount_minor,
                currency,
                capture,
                source,
                destination,
                source_id,
                destination_id,
                metadata: &metadata,
                source_state,
                source_created_at_s,
                destination_state,
                destination_created_at_s,
                now_s,
            };
            let a = self.0.assess(&r);
            Ok(PyRiskAssessment {
                decision: a.decision.as_str(),
                risk_score: a.risk_score,
                risk_level: a.risk_level,
                reason: a.reason,
                rule_index: a.rule_index,
                model: a.model.map(|m| m.id.clone()),
                arm: a.arm,
                shadow_scores: a
                    .shadow_scores
                    .into_iter()
                    .map(|(m, s)| (m.id.clone(), s))
                    .collect(),
                features: a.features.map_or_else(Vec::new, |f| f.to_vec()),
            })
        })
    }
}

type BenchCase = (
    i64,
    bool,
    Vec<u8>,
    Vec<u8>,
    Option<Vec<u8>>,
    i64,
    Option<Vec<u8>>,
    i64,
    i64,
);

fn timing_dict<'py>(py: Python<'py>, t: risk::bench::Timing) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("p50_us", (t.p50_ns / 1000.0 * 1000.0).round() / 1000.0)?;
    d.set_item("p99_us", (t.p99_ns / 1000.0 * 1000.0).round() / 1000.0)?;
    d.set_item("mean_us", (t.mean_ns / 1000.0 * 1000.0).round() / 1000.0)?;
    d.set_item("calls", t.calls)?;
    Ok(d)
}

/// For `paysvc bench`: times `model` evaluation and `policy.assess` natively over `cases`
/// (`(amount, capture, source_id, destination_id, source_state, source_created_at_s,
/// destination_state, destination_created_at_s, now_s)`), `iterations` calls each.
#[pyfunction]
fn _risk_bench<'py>(
    py: Python<'py>,
    policy: Bound<'py, PyRiskPolicy>,
    model: Bound<'py, PyRiskModel>,
    cases: Vec<BenchCase>,
    iterations: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let cases: Vec<risk::bench::Case> = cases
        .into_iter()
        .map(|c| risk::bench::Case {
            amount_minor: c.0,
            capture: c.1,
            source_id: c.2,
            destination_id: c.3,
            source_state: c.4,
            source_created_at_s: c.5,
            destination_state: c.6,
            destination_created_at_s: c.7,
            now_s: c.8,
        })
        .collect();
    let (model_t, step_t) = run(py, || {
        Ok((
            risk::bench::model_eval(&model.get().0, &cases, iterations),
            risk::bench::step(&policy.get().0, &cases, iterations),
        ))
    })?;
    let d = PyDict::new(py);
    d.set_item("model_eval", timing_dict(py, model_t)?)?;
    d.set_item("step", timing_dict(py, step_t)?)?;
    d.set_item("model_trees", model.get().0.n_trees())?;
    Ok(d)
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
    m.add_function(wrap_pyfunction!(prepare_payment, m)?)?;
    m.add_function(wrap_pyfunction!(settle_fee, m)?)?;
    m.add_function(wrap_pyfunction!(prepare_capture, m)?)?;
    m.add_function(wrap_pyfunction!(prepare_cancel, m)?)?;
    m.add_function(wrap_pyfunction!(prepare_refund, m)?)?;
    m.add_function(wrap_pyfunction!(prepare_account, m)?)?;
    m.add_function(wrap_pyfunction!(prepare_fee_schedule, m)?)?;
    m.add_class::<PyRiskModel>()?;
    m.add_class::<PyRiskPolicy>()?;
    m.add_class::<PyRiskAssessment>()?;
    m.add_function(wrap_pyfunction!(risk_feature_names, m)?)?;
    m.add_function(wrap_pyfunction!(risk_features, m)?)?;
    m.add_function(wrap_pyfunction!(risk_state_record, m)?)?;
    m.add_function(wrap_pyfunction!(risk_rules_check, m)?)?;
    // Private: set as an attribute so that it stays out of `__all__`.
    m.setattr("_panic_for_tests", wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.setattr("_risk_bench", wrap_pyfunction!(_risk_bench, m)?)?;
    m.setattr(
        "_risk_state_summary",
        wrap_pyfunction!(_risk_state_summary, m)?,
    )?;
    Ok(())
}
