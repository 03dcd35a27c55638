//! PyO3 bindings: `neuroflow._core.Engine`, the CPU engine of docs/engine.md.
//! Core errors become ValueError, or MemoryError where an allocation was refused; a Rust
//! panic becomes RuntimeError, never an abort.
//! Every numeric call runs with the interpreter released.

use crate::network::{Input, Network};
use crate::real::Real;
use crate::layers::Mode;
use crate::spec::NetSpec;
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{Element, IntoPyArray, PyArrayMethods, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyMemoryError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A core error as the Python exception of its kind.
fn py_err(e: crate::Error) -> PyErr {
    match e.1 {
        crate::error::ErrorKind::Value => PyValueError::new_err(e.0),
        crate::error::ErrorKind::Memory => PyMemoryError::new_err(e.0),
    }
}

/// Run `f` without the GIL; map errors and panics to Python exceptions.
fn run<R: Send>(py: Python<'_>, f: impl FnOnce() -> crate::Result<R> + Send) -> PyResult<R> {
    match py.detach(move || catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(py_err(e)),
        // an allocation refused in the middle of a computation (alloc::grown)
        Err(p) if p.is::<crate::Error>() => Err(py_err(*p.downcast::<crate::Error>().expect("checked"))),
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(PyRuntimeError::new_err(format!("neuroflow internal error (please report it): {msg}")))
        }
    }
}

/// A borrowed input batch: floats of the engine's precision or uint8.
enum Held<'py, T: Element> {
    Float(PyReadonlyArrayDyn<'py, T>),
    Bytes(PyReadonlyArrayDyn<'py, u8>),
}

impl<'py, T: Element + Real> Held<'py, T> {
    fn new(x: &Bound<'py, PyAny>, name: &str) -> PyResult<Self> {
        if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'py, T>>() {
            return Ok(Held::Float(a));
        }
        if let Ok(a) = x.extract::<PyReadonlyArrayDyn<'py, u8>>() {
            return Ok(Held::Bytes(a));
        }
        Err(PyTypeError::new_err(format!("{name}: expected a numpy array of {} or uint8", T::NAME)))
    }
    fn input(&self) -> PyResult<Input<'_, T>> {
        Ok(match self {
            Held::Float(a) => Input::Float(c_slice(a, "x")?),
            Held::Bytes(a) => Input::Bytes(c_slice(a, "x")?),
        })
    }
}

/// The array's values in C order. `as_slice` alone would also accept a Fortran-ordered
/// array and hand back its elements in the wrong order.
fn c_slice<'a, T: Element>(a: &'a PyReadonlyArrayDyn<'_, T>, name: &str) -> PyResult<&'a [T]> {
    if !a.is_c_contiguous() {
        return Err(PyValueError::new_err(format!("{name}: the array must be C-contiguous (np.ascontiguousarray)")));
    }
    a.as_slice().map_err(|_| PyValueError::new_err(format!("{name}: the array must be C-contiguous")))
}

fn floats<'py, T: Element + Real>(t: &Bound<'py, PyAny>, name: &str) -> PyResult<PyReadonlyArrayDyn<'py, T>> {
    t.extract::<PyReadonlyArrayDyn<'py, T>>()
        .map_err(|_| PyTypeError::new_err(format!("{name}: expected a numpy array of {}", T::NAME)))
}

fn array<'py, T: Element>(py: Python<'py>, shape: Vec<usize>, v: Vec<T>) -> PyResult<Bound<'py, PyAny>> {
    let a = ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok(a.into_pyarray(py).into_any())
}

fn arrays<'py, T: Element>(py: Python<'py>, shapes: &[Vec<usize>], vs: Vec<Vec<T>>) -> PyResult<Bound<'py, PyList>> {
    let items = shapes.iter().cloned().zip(vs).map(|(s, v)| array(py, s, v)).collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// Copy a list of arrays, each of the shape expected, into vectors.
fn vectors<T: Element + Real>(list: &Bound<'_, PyAny>, shapes: &[Vec<usize>], name: &str) -> PyResult<Vec<Vec<T>>> {
    let items: Vec<Bound<'_, PyAny>> = list.extract().map_err(|_| PyTypeError::new_err(format!("{name}: expected a list of arrays")))?;
    if items.len() != shapes.len() {
        return Err(PyValueError::new_err(format!("{name}: expected {} arrays, got {}", shapes.len(), items.len())));
    }
    items
        .iter()
        .zip(shapes)
        .enumerate()
        .map(|(i, (item, shape))| {
            let a = floats::<T>(item, &format!("{name}[{i}]"))?;
            if a.shape() != shape.as_slice() {
                return Err(PyValueError::new_err(format!("{name}[{i}]: expected shape {shape:?}, got {:?}", a.shape())));
            }
            let mut v = Vec::new();
            v.try_reserve_exact(a.len()).map_err(|_| PyMemoryError::new_err(format!("{name}[{i}]: not enough memory to copy {} values", a.len())))?;
            v.extend(a.as_array().iter().copied());
            Ok(v)
        })
        .collect()
}

/// A flat, writable, C-contiguous 1-D array of the engine's precision (`grads`).
fn flat_out<'py, T: Element + Real>(a: &Bound<'py, PyAny>) -> PyResult<PyReadwriteArrayDyn<'py, T>> {
    let a = a
        .extract::<PyReadwriteArrayDyn<'py, T>>()
        .map_err(|_| PyTypeError::new_err(format!("grads: expected a writable 1-D numpy array of {}", T::NAME)))?;
    if a.ndim() != 1 || !a.is_c_contiguous() {
        return Err(PyValueError::new_err("grads: expected a C-contiguous 1-D array"));
    }
    Ok(a)
}

/// Synchronised BatchNorm's sums through a Python callable `sum(values)` that all-reduces
/// a float64 array in place (neuroflow.distributed). Its first error is kept, later sums
/// give NaN, and the engine call raises that error when it returns.
struct PyCollective {
    f: Py<PyAny>,
    err: std::sync::Mutex<Option<PyErr>>,
}

impl crate::layers::Collective for PyCollective {
    fn sum(&self, v: &mut [f64]) {
        let mut err = self.err.lock().unwrap_or_else(|e| e.into_inner());
        if err.is_none() {
            let r = Python::attach(|py| -> PyResult<()> {
                let a = numpy::PyArray1::<f64>::from_slice(py, v);
                self.f.call1(py, (a.clone(),))?;
                v.copy_from_slice(a.readonly().as_slice()?);
                Ok(())
            });
            match r {
                Ok(()) => return,
                Err(e) => *err = Some(e),
            }
        }
        v.iter_mut().for_each(|x| *x = f64::NAN);
    }
}

/// The collective for `sync` (a callable or None), and after the call the error it met.
fn collective(sync: Option<Py<PyAny>>) -> Option<std::sync::Arc<PyCollective>> {
    sync.map(|f| std::sync::Arc::new(PyCollective { f, err: std::sync::Mutex::new(None) }))
}

fn as_dyn(c: &Option<std::sync::Arc<PyCollective>>) -> Option<std::sync::Arc<dyn crate::layers::Collective>> {
    c.clone().map(|c| c as std::sync::Arc<dyn crate::layers::Collective>)
}

fn sync_error(c: Option<std::sync::Arc<PyCollective>>) -> PyResult<()> {
    match c.and_then(|c| c.err.lock().unwrap_or_else(|e| e.into_inner()).take()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

struct Typed<T: Real>(Network<T>);

fn mode(m: &str) -> PyResult<Mode> {
    match m {
        "eval" => Ok(Mode::Eval),
        "train" => Ok(Mode::Train { update_state: false }),
        other => Err(PyValueError::new_err(format!("mode: expected \"eval\" or \"train\", got {other:?}"))),
    }
}

impl<T: Real + Element> Typed<T> {
    fn param_shapes(&self) -> Vec<Vec<usize>> {
        self.0.param_info.iter().map(|(_, s)| s.clone()).collect()
    }
    fn state_shapes(&self) -> Vec<Vec<usize>> {
        self.0.state_info.iter().map(|(_, s)| s.clone()).collect()
    }
    fn slot_shapes(&self) -> Vec<Vec<usize>> {
        let k = self.0.spec.update.slots().len();
        self.param_shapes().into_iter().flat_map(|s| std::iter::repeat_n(s, k)).collect()
    }

    /// x must be (N, *input), as docs/engine.md says: a batch of another shape with the
    /// same number of values would be read wrongly.
    fn check_x(&self, held: &Held<'_, T>) -> PyResult<()> {
        let shape = match held {
            Held::Float(a) => a.shape().to_vec(),
            Held::Bytes(a) => a.shape().to_vec(),
        };
        let input = &self.0.spec.input;
        if shape.len() != input.len() + 1 || &shape[1..] != input.as_slice() {
            return Err(PyValueError::new_err(format!("x: expected a batch of shape (N, {}), got {shape:?}", input.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "))));
        }
        Ok(())
    }

    fn forward<'py>(&mut self, py: Python<'py>, x: &Bound<'py, PyAny>, layer: Option<usize>, m: Mode, predict: bool) -> PyResult<Bound<'py, PyAny>> {
        let held = Held::<T>::new(x, "x")?;
        self.check_x(&held)?;
        let input = held.input()?;
        let net = &mut self.0;
        let out = run(py, || if predict { net.predict(input) } else { net.forward(input, layer, m) })?;
        let mut shape = net.output_shape(if predict { None } else { layer });
        let per: usize = shape.iter().product();
        shape.insert(0, out.len() / per.max(1));
        array(py, shape, out)
    }

    fn loss(&mut self, py: Python<'_>, x: &Bound<'_, PyAny>, t: &Bound<'_, PyAny>, m: Mode) -> PyResult<f64> {
        let (held, t) = (Held::<T>::new(x, "x")?, floats::<T>(t, "targets")?);
        self.check_x(&held)?;
        let (input, t) = (held.input()?, c_slice(&t, "targets")?);
        let net = &mut self.0;
        run(py, || net.loss(input, t, m))
    }

    fn gradients<'py>(&mut self, py: Python<'py>, x: &Bound<'py, PyAny>, t: &Bound<'py, PyAny>, fd: Option<f64>) -> PyResult<Bound<'py, PyList>> {
        let (held, t) = (Held::<T>::new(x, "x")?, floats::<T>(t, "targets")?);
        self.check_x(&held)?;
        let (input, t) = (held.input()?, c_slice(&t, "targets")?);
        let shapes = self.param_shapes();
        let net = &mut self.0;
        let (_, g) = run(py, || match fd {
            None => net.gradients(input, t),
            Some(d) => net.fd_gradients(input, t, d),
        })?;
        arrays(py, &shapes, g)
    }

    fn train_step_data(&mut self, py: Python<'_>, ds: &crate::data::Dataset, idx: &[usize], lr: f64, aug: Option<&crate::data::Augment>, epoch: u64) -> PyResult<f64> {
        let net = &mut self.0;
        run(py, || net.train_step_data(ds, idx, lr, aug, epoch))
    }

    fn train_step(&mut self, py: Python<'_>, x: &Bound<'_, PyAny>, t: &Bound<'_, PyAny>, lr: f64, fd: Option<f64>) -> PyResult<f64> {
        let (held, t) = (Held::<T>::new(x, "x")?, floats::<T>(t, "targets")?);
        self.check_x(&held)?;
        let (input, t) = (held.input()?, c_slice(&t, "targets")?);
        let net = &mut self.0;
        run(py, || net.train_step(input, t, lr, fd))
    }

    #[allow(clippy::too_many_arguments)]
    fn backward(&mut self, py: Python<'_>, x: &Bound<'_, PyAny>, t: &Bound<'_, PyAny>, grads: &Bound<'_, PyAny>, batch: Option<usize>, offset: usize, sync: Option<Py<PyAny>>) -> PyResult<f64> {
        let (held, t) = (Held::<T>::new(x, "x")?, floats::<T>(t, "targets")?);
        self.check_x(&held)?;
        let (input, t) = (held.input()?, c_slice(&t, "targets")?);
        let mut g = flat_out::<T>(grads)?;
        let out = g.as_slice_mut().map_err(|_| PyValueError::new_err("grads: the array must be C-contiguous"))?;
        let c = collective(sync);
        let d = as_dyn(&c);
        let net = &mut self.0;
        let r = run(py, || net.backward(input, t, batch, offset, d, out));
        sync_error(c)?;
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn backward_data(&mut self, py: Python<'_>, ds: &crate::data::Dataset, idx: &[usize], grads: &Bound<'_, PyAny>, batch: Option<usize>, offset: usize, aug: Option<&crate::data::Augment>, epoch: u64, sync: Option<Py<PyAny>>) -> PyResult<f64> {
        let mut g = flat_out::<T>(grads)?;
        let out = g.as_slice_mut().map_err(|_| PyValueError::new_err("grads: the array must be C-contiguous"))?;
        let c = collective(sync);
        let d = as_dyn(&c);
        let net = &mut self.0;
        let r = run(py, || net.backward_data(ds, idx, aug, epoch, batch, offset, d, out));
        sync_error(c)?;
        r
    }

    fn apply_update(&mut self, py: Python<'_>, grads: &Bound<'_, PyAny>, lr: f64) -> PyResult<()> {
        let g = floats::<T>(grads, "grads")?;
        if g.ndim() != 1 {
            return Err(PyValueError::new_err("grads: expected a flat 1-D array (every parameter in order)"));
        }
        let g = c_slice(&g, "grads")?;
        let net = &mut self.0;
        run(py, || net.apply_update(g, lr))
    }
}

enum Net {
    F32(Typed<f32>),
    F64(Typed<f64>),
}

/// Dispatch one expression over the two precisions.
macro_rules! each {
    ($net:expr, $n:ident => $body:expr) => {
        match $net {
            Net::F32($n) => $body,
            Net::F64($n) => $body,
        }
    };
}

fn copies<T: Clone>(list: &[Vec<T>], what: &str) -> PyResult<Vec<Vec<T>>> {
    crate::alloc::copies(list, what).map_err(py_err)
}

fn info(list: &[crate::network::Info]) -> Vec<(String, Vec<usize>)> {
    list.to_vec()
}

/// The CPU engine: parameters, state, optimizer and buffers of one network (docs/engine.md).
#[pyclass(module = "neuroflow._core", name = "Engine")]
pub struct Engine {
    net: Net,
}

#[pymethods]
impl Engine {
    #[new]
    fn new(py: Python<'_>, spec_json: &str) -> PyResult<Self> {
        // through `run`: building allocates every tensor (MemoryError, never an abort)
        let net = run(py, || {
            let spec = NetSpec::from_json(spec_json)?;
            Ok(match spec.dtype.as_str() {
                "f32" => Net::F32(Typed(Network::new(spec)?)),
                "f64" => Net::F64(Typed(Network::new(spec)?)),
                other => crate::bail!("dtype: expected \"f32\" or \"f64\", got {other:?}"),
            })
        })?;
        Ok(Engine { net })
    }

    /// The resolved spec the engine was built from.
    #[getter]
    fn spec(&self) -> String {
        each!(&self.net, n => n.0.spec.to_json())
    }

    fn num_params(&self) -> usize {
        each!(&self.net, n => n.0.num_params())
    }

    fn param_info(&self) -> Vec<(String, Vec<usize>)> {
        each!(&self.net, n => info(&n.0.param_info))
    }

    fn state_info(&self) -> Vec<(String, Vec<usize>)> {
        each!(&self.net, n => info(&n.0.state_info))
    }

    fn optimizer_slots(&self) -> Vec<String> {
        each!(&self.net, n => n.0.spec.update.slots().iter().map(|s| s.to_string()).collect())
    }

    fn get_params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        each!(&self.net, n => arrays(py, &n.param_shapes(), copies(&n.0.params, "params")?))
    }

    fn set_params(&mut self, params: &Bound<'_, PyAny>) -> PyResult<()> {
        each!(&mut self.net, n => {
            let v = vectors(params, &n.param_shapes(), "params")?;
            n.0.set_params(v).map_err(py_err)
        })
    }

    fn get_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        each!(&self.net, n => arrays(py, &n.state_shapes(), copies(&n.0.state, "state")?))
    }

    fn set_state(&mut self, state: &Bound<'_, PyAny>) -> PyResult<()> {
        each!(&mut self.net, n => {
            let v = vectors(state, &n.state_shapes(), "state")?;
            n.0.set_state(v).map_err(py_err)
        })
    }

    fn get_optimizer_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        each!(&self.net, n => arrays(py, &n.slot_shapes(), copies(&n.0.slots, "optimizer_state")?))
    }

    fn set_optimizer_state(&mut self, state: &Bound<'_, PyAny>) -> PyResult<()> {
        each!(&mut self.net, n => {
            let v = vectors(state, &n.slot_shapes(), "optimizer_state")?;
            n.0.set_slots(v).map_err(py_err)
        })
    }

    fn get_step(&self) -> u64 {
        each!(&self.net, n => n.0.step)
    }

    fn set_step(&mut self, step: u64) {
        each!(&mut self.net, n => n.0.step = step)
    }

    /// The output of layer `layer` (its pre-order id; default the last).
    #[pyo3(signature = (x, layer=None, mode="eval"))]
    fn forward<'py>(&mut self, py: Python<'py>, x: &Bound<'py, PyAny>, layer: Option<usize>, mode: &str) -> PyResult<Bound<'py, PyAny>> {
        let m = self::mode(mode)?;
        each!(&mut self.net, n => n.forward(py, x, layer, m, false))
    }

    fn predict<'py>(&mut self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        each!(&mut self.net, n => n.forward(py, x, None, Mode::Eval, true))
    }

    #[pyo3(signature = (x, t, mode="eval"))]
    fn loss(&mut self, py: Python<'_>, x: &Bound<'_, PyAny>, t: &Bound<'_, PyAny>, mode: &str) -> PyResult<f64> {
        let m = self::mode(mode)?;
        each!(&mut self.net, n => n.loss(py, x, t, m))
    }

    /// Train-mode gradients of the reduced loss (a list shaped like the params).
    fn gradients<'py>(&mut self, py: Python<'py>, x: &Bound<'py, PyAny>, t: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
        each!(&mut self.net, n => n.gradients(py, x, t, None))
    }

    /// Gradients by central finite differences with step `delta`.
    fn fd_gradients<'py>(&mut self, py: Python<'py>, x: &Bound<'py, PyAny>, t: &Bound<'py, PyAny>, delta: f64) -> PyResult<Bound<'py, PyList>> {
        each!(&mut self.net, n => n.gradients(py, x, t, Some(delta)))
    }

    /// One step on samples `indices` of `data` (a Dataset), gathered, augmented for
    /// `epoch` and converted straight into the input buffer.
    #[pyo3(signature = (data, indices, lr, augment=None, epoch=0))]
    fn train_step_data(&mut self, py: Python<'_>, data: PyRef<'_, PyDataset>, indices: &Bound<'_, PyAny>, lr: f64, augment: Option<&str>, epoch: u64) -> PyResult<f64> {
        let (idx, aug) = (self::indices(indices)?, self::augment(augment)?);
        let ds = &data.inner;
        each!(&mut self.net, n => n.train_step_data(py, ds, &idx, lr, aug.as_ref(), epoch))
    }

    /// One step; returns the batch's mean per-sample loss before the update.
    #[pyo3(signature = (x, t, lr, fd_delta=None))]
    fn train_step(&mut self, py: Python<'_>, x: &Bound<'_, PyAny>, t: &Bound<'_, PyAny>, lr: f64, fd_delta: Option<f64>) -> PyResult<f64> {
        each!(&mut self.net, n => n.train_step(py, x, t, lr, fd_delta))
    }

    /// Data-parallel steps (docs/engine.md): train-mode forward and backward of a shard of
    /// a global batch of `batch` samples at position `offset`; the flat gradients go into
    /// `grads`, running statistics move; returns the sum of the shard's per-sample losses.
    /// `sync`: a callable all-reducing a float64 array in place (synchronised BatchNorm).
    #[pyo3(signature = (x, t, grads, batch=None, offset=0, sync=None))]
    #[allow(clippy::too_many_arguments)]
    fn backward(&mut self, py: Python<'_>, x: &Bound<'_, PyAny>, t: &Bound<'_, PyAny>, grads: &Bound<'_, PyAny>, batch: Option<usize>, offset: usize, sync: Option<Py<PyAny>>) -> PyResult<f64> {
        each!(&mut self.net, n => n.backward(py, x, t, grads, batch, offset, sync))
    }

    /// `backward` on samples `indices` of `data`, gathered as `train_step_data` does.
    #[pyo3(signature = (data, indices, grads, batch=None, offset=0, augment=None, epoch=0, sync=None))]
    #[allow(clippy::too_many_arguments)]
    fn backward_data(&mut self, py: Python<'_>, data: PyRef<'_, PyDataset>, indices: &Bound<'_, PyAny>, grads: &Bound<'_, PyAny>, batch: Option<usize>, offset: usize, augment: Option<&str>, epoch: u64, sync: Option<Py<PyAny>>) -> PyResult<f64> {
        let (idx, aug) = (self::indices(indices)?, self::augment(augment)?);
        let ds = &data.inner;
        each!(&mut self.net, n => n.backward_data(py, ds, &idx, grads, batch, offset, aug.as_ref(), epoch, sync))
    }

    /// One update with the flat reduced gradients `grads` (as `backward` writes them).
    fn apply_update(&mut self, py: Python<'_>, grads: &Bound<'_, PyAny>, lr: f64) -> PyResult<()> {
        each!(&mut self.net, n => n.apply_update(py, grads, lr))
    }
}

fn augment(json: Option<&str>) -> PyResult<Option<crate::data::Augment>> {
    json.map(|j| serde_json::from_str(j).map_err(|e| PyValueError::new_err(format!("augment: not a valid augmentation: {e}")))).transpose()
}

fn indices(idx: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    let a = idx.extract::<PyReadonlyArrayDyn<'_, i64>>().map_err(|_| PyTypeError::new_err("indices: expected a numpy array of int64"))?;
    a.as_array()
        .iter()
        .map(|&i| usize::try_from(i).map_err(|_| PyValueError::new_err(format!("indices: {i} is not a sample index"))))
        .collect()
}

/// A data set held once by the core (values as given: uint8 stays uint8), from which the
/// engines draw batches by index (docs/engine.md).
#[pyclass(module = "neuroflow._core", name = "Dataset", frozen)]
pub struct PyDataset {
    inner: crate::data::Dataset,
    /// The NumPy array the data set reads, kept alive (read-only view: no copy).
    _values: Py<PyAny>,
}

#[pymethods]
impl PyDataset {
    /// `x`: (N, *shape) uint8, float32 or float64, C-contiguous; `t`: (N, K) float64 targets.
    #[new]
    fn new(py: Python<'_>, x: &Bound<'_, PyAny>, t: &Bound<'_, PyAny>) -> PyResult<Self> {
        let t = t.extract::<PyReadonlyArrayDyn<'_, f64>>().map_err(|_| PyTypeError::new_err("t: expected a numpy array of float64"))?;
        if t.ndim() != 2 {
            return Err(PyValueError::new_err(format!("t: expected (N, K) targets, got shape {:?}", t.shape())));
        }
        let k = t.shape()[1];
        let targets = crate::alloc::copy(c_slice(&t, "t")?, || "t: the targets".into()).map_err(py_err)?;
        let values_of = |shape: &[usize]| -> PyResult<Vec<usize>> {
            if shape.len() < 2 {
                return Err(PyValueError::new_err(format!("x: expected (N, *shape) samples, got shape {shape:?}")));
            }
            Ok(shape[1..].to_vec())
        };
        // a read-only view of x, kept by the data set: the caller's array is read, not copied
        let view = x.call_method0("view").map_err(|_| PyTypeError::new_err("x: expected a numpy array"))?;
        view.getattr("flags")?.setattr("writeable", false)?;
        macro_rules! take {
            ($ty:ty, $variant:ident) => {
                if let Ok(a) = view.extract::<PyReadonlyArrayDyn<'_, $ty>>() {
                    let shape = values_of(a.shape())?;
                    let v = c_slice(&a, "x")?;
                    // SAFETY: `view` is held by the data set and cannot be written through;
                    // its memory lives as long as the view does.
                    let values = crate::data::Values::$variant(unsafe { crate::data::Shared::borrowed(v) });
                    let inner = run(py, || crate::data::Dataset::new(values, shape, targets, k))?;
                    return Ok(PyDataset { inner, _values: view.clone().unbind() });
                }
            };
        }
        take!(u8, Bytes);
        take!(f32, F32);
        take!(f64, F64);
        Err(PyTypeError::new_err("x: expected a numpy array of uint8, float32 or float64"))
    }

    #[getter]
    fn n(&self) -> usize {
        self.inner.n
    }

    #[getter]
    fn shape(&self) -> Vec<usize> {
        self.inner.shape.clone()
    }

    /// A fast fingerprint of the values and targets (to recognise the data of a run).
    #[getter]
    fn fingerprint(&self) -> String {
        self.inner.fingerprint.clone()
    }

    /// Samples `indices`, augmented for `epoch`, as `dtype` ("f32" or "f64"; bytes scaled
    /// by 1/255; no normalisation: the engines apply their spec's).
    #[pyo3(signature = (indices, augment=None, epoch=0, dtype="f32"))]
    fn gather<'py>(&self, py: Python<'py>, indices: &Bound<'py, PyAny>, augment: Option<&str>, epoch: u64, dtype: &str) -> PyResult<Bound<'py, PyAny>> {
        match dtype {
            "f32" => self.gather_as::<f32>(py, indices, augment, epoch),
            "f64" => self.gather_as::<f64>(py, indices, augment, epoch),
            other => Err(PyValueError::new_err(format!("dtype: expected \"f32\" or \"f64\", got {other:?}"))),
        }
    }

    /// The targets of `indices`, (len, K) float64.
    fn targets<'py>(&self, py: Python<'py>, indices: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let idx = self::indices(indices)?;
        if let Some(&bad) = idx.iter().find(|&&i| i >= self.inner.n) {
            return Err(PyValueError::new_err(format!("indices: {bad} is not a sample of this data set (0..{})", self.inner.n)));
        }
        let mut out = Vec::new();
        self.inner.targets_into::<f64>(&idx, &mut out).map_err(py_err)?;
        array(py, vec![idx.len(), self.inner.k], out)
    }
}

impl PyDataset {
    fn gather_as<'py, T: Real + Element>(&self, py: Python<'py>, indices: &Bound<'py, PyAny>, augment: Option<&str>, epoch: u64) -> PyResult<Bound<'py, PyAny>> {
        let (idx, aug) = (self::indices(indices)?, self::augment(augment)?);
        let ds = &self.inner;
        let d = ds.sample_size();
        let out = run(py, || {
            let len = crate::alloc::size(&[idx.len(), d], || "gather".into())?;
            let mut out = crate::alloc::zeros::<T>(len, || format!("gather: a batch of {}", idx.len()))?;
            let conv = crate::data::Convert::new(matches!(ds.values, crate::data::Values::Bytes(_)), None, *ds.shape.last().unwrap());
            crate::threads::pool().install(|| ds.gather_into(&idx, aug.as_ref(), epoch, &conv, &mut out))?;
            Ok(out)
        })?;
        let mut shape = ds.shape.clone();
        shape.insert(0, idx.len());
        array(py, shape, out)
    }
}

/// A spec with every layer's shapes, parameters and state filled in (docs/engine.md).
#[pyfunction]
fn resolve(spec_json: &str) -> PyResult<String> {
    crate::layout::resolve_json(spec_json).map_err(py_err)
}

/// One layer's spec resolved for input `dim_in`; `what` names it in messages.
#[pyfunction]
fn resolve_layer(layer_json: &str, dim_in: Vec<usize>, what: &str) -> PyResult<String> {
    let err = |e: String| PyValueError::new_err(e);
    let mut l: crate::spec::LayerSpec = serde_json::from_str(layer_json).map_err(|e| err(format!("{what}: not a valid layer spec: {e}")))?;
    crate::layout::resolve_layer(&mut l, &dim_in, what).map_err(py_err)?;
    Ok(serde_json::to_string(&l).expect("a spec always serialises"))
}

#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    if n == 0 {
        return Err(PyValueError::new_err("n: expected a positive number of threads, got 0"));
    }
    crate::threads::set_num_threads(n);
    Ok(())
}

fn matmul_typed<'py, T: Element + Real>(py: Python<'py>, a: PyReadonlyArrayDyn<'py, T>, b: PyReadonlyArrayDyn<'py, T>) -> PyResult<Bound<'py, PyAny>> {
    let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
    if sa.len() != 2 || sb.len() != 2 || sa[1] != sb[0] {
        return Err(PyValueError::new_err(format!("matmul: expected matrices (m, k) and (k, n), got {sa:?} and {sb:?}")));
    }
    let (x, y) = (c_slice(&a, "a")?, c_slice(&b, "b")?);
    let (m, k, n) = (sa[0], sa[1], sb[1]);
    let c = run(py, || {
        let mut c = crate::alloc::zeros(crate::alloc::size(&[m, n], || "matmul: the product".into())?, || "matmul: the product".into())?;
        let pool = crate::threads::pool();
        let threads = pool.current_num_threads();
        pool.install(|| crate::matmul::matmul(crate::matmul::Mat::new(x, m, k), crate::matmul::Mat::new(y, k, n), &mut c, false, threads));
        Ok(c)
    })?;
    array(py, vec![m, n], c)
}

/// a @ b on the core's gemm backend (for benchmarks and checks).
#[pyfunction]
fn matmul<'py>(py: Python<'py>, a: &Bound<'py, PyAny>, b: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if let (Ok(a), Ok(b)) = (a.extract::<PyReadonlyArrayDyn<'py, f32>>(), b.extract::<PyReadonlyArrayDyn<'py, f32>>()) {
        return matmul_typed(py, a, b);
    }
    if let (Ok(a), Ok(b)) = (a.extract::<PyReadonlyArrayDyn<'py, f64>>(), b.extract::<PyReadonlyArrayDyn<'py, f64>>()) {
        return matmul_typed(py, a, b);
    }
    Err(PyTypeError::new_err("matmul: expected two float32 or two float64 numpy arrays"))
}

#[pyfunction]
fn num_threads() -> usize {
    crate::threads::num_threads()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Engine>()?;
    m.add_class::<PyDataset>()?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(matmul, m)?)?;
    m.add_function(wrap_pyfunction!(resolve, m)?)?;
    m.add_function(wrap_pyfunction!(resolve_layer, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
