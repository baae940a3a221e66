// gradtrace's native recorder: the per-node post-hook and the tensor table of one backward pass, in C++.
//
// Why: a Python post-hook costs the engine a GIL round trip, a tuple of Python tensors per call and a few
// microseconds of interpreter work per gradient; on a 911-node transformer that alone made backward 1.2x
// slower. These hooks run in the engine's thread without the GIL and do exactly what tracer/record/tensors.py's
// TensorTable.add does (same kinds, same sample positions, same rows), so a pass recorded here gives the
// same Trace as one recorded by the Python hooks. Python still walks the graph, decides every policy and
// builds the Trace; only the hot path lives here. Built on demand by tracer/record/native/loader.py.

#include <torch/extension.h>
#include <torch/csrc/DynamicTypes.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/functions/accumulate_grad.h>
#include <torch/csrc/autograd/graph_task.h>
#include <torch/csrc/autograd/python_cpp_function.h>
#include <torch/csrc/autograd/python_function.h>
#include <torch/version.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <map>
#include <mutex>
#include <tuple>
#include <typeindex>
#include <thread>
#include <unordered_map>

namespace ag = torch::autograd;

// How autograd holds its nodes: torch 2.13 made it c10::intrusive_ptr<Node> (before, std::shared_ptr<Node>, with
// THPFunction::cdata a std::weak_ptr<PyNode>). It compiles back to torch 2.1, but gradtrace supports 2.5 and newer
// (loader.py's NATIVE_RANGE, tested by ./dev compat).
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 13)
using NodePtr = c10::intrusive_ptr<ag::Node>;
#define GRADTRACE_PY_NODE(fn) ((fn)->cdata)
#else
using NodePtr = std::shared_ptr<ag::Node>;
#define GRADTRACE_PY_NODE(fn) NodePtr((fn)->cdata.lock())
#endif

namespace {

// The entry kinds of tracer/record/tensors.py (_VALUES, _SAMPLE, _STATS, _SMALL, _EMPTY), plus one whose summary
// Python computes later from a kept tensor (exact statistics of a seed, magnitudes of a complex gradient).
enum Kind : int64_t { VALUES = 0, SAMPLE = 1, STATS = 2, SMALL = 3, EMPTY = 4, DEFER = 5 };

struct Entry {
  int64_t kind = EMPTY;
  std::vector<int64_t> shape;
  at::ScalarType dtype = at::kFloat;
  at::Device device{at::kCPU};
  int64_t numel = 0;
  int64_t version = -1;
  bool identity = false;  // registered for reuse by object identity (not a copy)
  c10::weak_intrusive_ptr<c10::TensorImpl> ref{c10::intrusive_ptr<c10::TensorImpl>()};
  int64_t block = -1, row = -1;  // payload in rows: which block and row (its view is made on export)
  int64_t tight = -1, at = 0;  // after compact(): payload in tight_[tight] from element `at` (view made on export)
  at::Tensor payload;  // otherwise: own clone, or the tensor kept for DEFER
  at::Tensor kept;  // capture="full": the whole gradient
  double norm = NAN;  // exact norm (leaf gradients), with its NaN and Inf counts
  int64_t nan = 0, inf = 0;
  // For an entry with an exact norm: its data, to recognise the leaf's .grad (a detach() of it, sharing
  // storage and version counter) after the pass without reading it again.
  c10::weak_intrusive_ptr<c10::StorageImpl> storage{c10::intrusive_ptr<c10::StorageImpl>()};
  int64_t offset = 0;
  std::vector<int64_t> strides;
  bool has_norm = false;  // an exact norm was asked for (norm_value holds it until settle())
  at::Tensor norm_value, norm_of;  // the 0-d norm, and the tensor it was taken of (NaN/Inf counts if needed)
  bool complex_magnitudes = false;  // DEFER of a complex tensor: statistics of its magnitudes
};

// torch.func's wrappers (a transform's level, vmap's batches): no storage of their own, never read here.
bool functorch_wrapped(const at::Tensor& t) {
  const c10::DispatchKeySet keys = t.key_set();
  return keys.has(c10::DispatchKey::FuncTorchGradWrapper) || keys.has(c10::DispatchKey::FuncTorchBatched);
}

// A tensor of another kind (tensors.py's readable() is false): sparse, quantized, nested, a torch.func wrapper.
bool odd(const at::Tensor& t) {
  return t.layout() != at::kStrided || t.is_quantized() || t.is_nested() || functorch_wrapped(t);
}

// While a torch.func transform is active, every tensor made is wrapped at its level; what gradtrace allocates
// to keep (pooled blocks, cached sample positions) must be plain tensors.
struct NoFunctorch {
  c10::impl::ExcludeDispatchKeyGuard guard{c10::DispatchKeySet(
      {c10::DispatchKey::FuncTorchDynamicLayerFrontMode, c10::DispatchKey::FuncTorchDynamicLayerBackMode})};
};

int64_t version_of(const at::Tensor& t) {
  // Tensors made under inference_mode have no version counter: never reused.
  return t.is_inference() ? -1 : static_cast<int64_t>(t._version());
}

at::Tensor fused_stats(const at::Tensor& t);  // below: exact statistics in one pass over memory

// tensors.py's reduced_stats: the same row from torch's reductions, computed where the tensor is (no host sync).
at::Tensor reduced_stats(const at::Tensor& t) {
  const at::Tensor x = t.is_floating_point() ? t : t.to(at::kDouble);
  const auto range = at::aminmax(x);
  const at::Tensor norm = at::linalg_vector_norm(x, 2).to(at::kDouble);
  at::Tensor nan, inf;
  if (x.is_cpu() && std::isfinite(norm.item<double>())) {
    // A finite norm rules out NaN and Inf (no device sync on the CPU): no isnan/isinf masks of the whole
    // gradient, which raised a capture="stats" pass's peak memory (as tensors.py's reduced_stats does)
    nan = inf = at::zeros({}, at::kDouble);
  } else {
    nan = at::isnan(x).sum().to(at::kDouble);
    inf = at::isinf(x).sum().to(at::kDouble);
  }
  return at::stack({norm, std::get<0>(range).to(at::kDouble), std::get<1>(range).to(at::kDouble),
                    x.sum().to(at::kDouble), at::count_nonzero(x).to(at::kDouble), nan, inf});
}

class Table {
 public:
  Table(int64_t max_values, int64_t sample_size, int64_t sample_block, bool keep_full)
      : max_values_(max_values), sample_size_(sample_size), sample_block_(sample_block), keep_full_(keep_full) {}

  int64_t add(const at::Tensor& original, bool exact, bool copy, bool fresh, bool exact_norm, bool keep_copy) {
    if (!original.defined()) {
      return -1;
    }
    if (odd(original)) {
      return add_odd(original);
    }
    const int64_t version = version_of(original);
    if (!(copy || fresh)) {
      auto it = seen_.find(original.unsafeGetTensorImpl());
      if (it != seen_.end()) {
        Entry& e = entries_[it->second];
        // A live weak reference pins the TensorImpl's address: same address means the same object.
        const bool same = !e.ref.expired() && version >= 0 && e.version == version;
        if (same && !(exact && e.kind == SAMPLE)) {
          if (exact_norm && e.kind == SAMPLE && !e.has_norm) {
            take_norm(e, original);
          }
          return it->second;
        }
      }
      if (exact_norm) {
        const int64_t same_data = lookup_data(original, version);
        if (same_data >= 0) {
          return same_data;
        }
      }
    }
    at::Tensor tensor = original.requires_grad() ? original.detach() : original;
    const int64_t handle = static_cast<int64_t>(entries_.size());
    entries_.emplace_back();
    Entry& e = entries_.back();
    e.shape = tensor.sizes().vec();
    e.dtype = tensor.scalar_type();
    e.device = tensor.device();
    e.numel = tensor.numel();
    e.version = version;
    const int64_t n = e.numel;
    if (n == 0) {
      e.kind = EMPTY;
    } else if (tensor.is_complex()) {
      e.kind = DEFER;
      e.complex_magnitudes = true;
      e.payload = copy ? tensor.clone() : tensor;
    } else if (n <= max_values_ && n <= sample_size_) {
      e.kind = VALUES;
      copy_into_row(e, tensor);
    } else if (n <= max_values_) {
      e.kind = VALUES;
      e.payload = tensor.reshape(-1).clone();
    } else if (n <= sample_size_) {
      e.kind = SMALL;
      copy_into_row(e, tensor);
    } else if (exact_all_) {
      // capture="stats": the seven numbers now (one read on the CPU; torch's reductions, left on the device, for
      // what fused_stats does not read); nothing of the gradient is held
      e.kind = STATS;
      e.payload = fused_stats(tensor);
      if (e.payload.numel() == 0) {
        e.payload = reduced_stats(tensor);
      }
    } else if (exact) {
      e.kind = DEFER;
      e.payload = copy ? tensor.clone() : tensor;
    } else {
      e.kind = SAMPLE;
      sample_into_row(e, tensor);
    }
    if (keep_full_ && (e.kind == SAMPLE || e.kind == SMALL)) {
      // keep_copy: see tensors.py's TensorTable.add (a leaf's gradient may have become its .grad)
      e.kept = (copy || keep_copy) ? tensor.clone() : tensor;
    }
    if (!copy) {
      e.identity = true;
      e.ref = c10::weak_intrusive_ptr<c10::TensorImpl>(original.getIntrusivePtr());
      seen_[original.unsafeGetTensorImpl()] = handle;
    }
    if (exact_norm && e.kind == SAMPLE) {
      take_norm(e, tensor);
    }
    return handle;
  }

  int64_t add_odd(const at::Tensor& original) {
    // Summarised by tensors.py's odd_info when the table is exported, from a copy: the hooks must not hold the
    // gradient itself (AccumulateGrad may take it as .grad, and the next pass adds into that).
    if (functorch_wrapped(original)) {
      throw std::runtime_error("a torch.func wrapper: its values are not read");
    }
    const int64_t handle = static_cast<int64_t>(entries_.size());
    at::Tensor copy = original.detach().clone();
    entries_.emplace_back();
    Entry& e = entries_.back();
    e.kind = DEFER;
    e.dtype = copy.scalar_type();
    e.device = copy.device();
    e.payload = copy;
    return handle;
  }

  py::tuple export_entries() {
    // (kind, shape, dtype, device, numel, payload, kept, norm, complex) per entry, norm as (norm, nan, inf), for
    // tracer/record/native/loader.py to turn into the Python table's columns.
    settle();
    py::list out;
    for (auto& e : entries_) {
      py::object dtype = py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(torch::getTHPDtype(e.dtype)));
      const at::Tensor payload = held(e);
      out.append(py::make_tuple(
          e.kind,
          py::tuple(py::cast(e.shape)),
          dtype,
          e.device.is_cpu() ? std::string("cpu") : e.device.str(),
          e.numel,
          payload.defined() ? py::cast(payload) : py::none(),
          e.kept.defined() ? py::cast(e.kept) : py::none(),
          e.has_norm ? py::object(py::make_tuple(e.norm, e.nan, e.inf)) : py::object(py::none()),
          e.complex_magnitudes));
    }
    return py::tuple(out);
  }

  void clear() {
    tight_.clear();
    entries_.clear();
    seen_.clear();
    by_storage_.clear();
    give_back_blocks();
    rows_.clear();
  }

  ~Table() { give_back_blocks(); }

  // The end of the pass: the used part of every row copied into one tight tensor per kind of row (dtype,
  // device), the blocks given back to the pool at once, and the lookups by identity dropped (no add follows).
  // Why: a pass recorded but not read yet would otherwise pin a block of 256 rows (1 MiB of float32) and a weak
  // reference to every tensor it saw, until its Trace is built — 1 MiB per step of a training loop.
  void compact() {
    settle();
    std::unordered_map<int64_t, int64_t> total;  // block -> used elements (the rows of one block share a kind)
    std::vector<int64_t> kind_of_block(blocks_.size(), -1);
    for (size_t r = 0; r < rows_.size(); ++r) {
      for (int64_t b : rows_[r].blocks) {
        kind_of_block[b] = static_cast<int64_t>(r);
      }
    }
    std::vector<int64_t> used(rows_.size(), 0);
    for (const Entry& e : entries_) {
      if (e.block >= 0) {
        used[kind_of_block[e.block]] += row_length(e);
      }
    }
    std::vector<int64_t> offset(rows_.size(), 0);
    NoFunctorch plain;
    tight_.assign(rows_.size(), at::Tensor());
    for (size_t r = 0; r < rows_.size(); ++r) {
      if (used[r] > 0) {
        tight_[r] = at::empty({used[r]}, at::TensorOptions().dtype(rows_[r].dtype).device(rows_[r].device));
      }
    }
    for (Entry& e : entries_) {
      if (e.block >= 0) {
        const int64_t r = kind_of_block[e.block], length = row_length(e);
        const at::Tensor& to = tight_[r];
        if (to.is_cpu()) {  // a memcpy per row: no tensor made per entry at the end of every pass
          const int64_t size = to.element_size();
          std::memcpy(static_cast<char*>(to.data_ptr()) + offset[r] * size,
                      static_cast<const char*>(blocks_[e.block].const_data_ptr()) + e.row * sample_size_ * size,
                      length * size);
        } else {
          to.narrow(0, offset[r], length).copy_(row_view(e, length));
        }
        e.tight = r;
        e.at = offset[r];
        offset[r] += length;
        e.block = e.row = -1;
      }
      e.ref = c10::weak_intrusive_ptr<c10::TensorImpl>(c10::intrusive_ptr<c10::TensorImpl>());
      e.storage = c10::weak_intrusive_ptr<c10::StorageImpl>(c10::intrusive_ptr<c10::StorageImpl>());
    }
    give_back_blocks();
    rows_.clear();
    seen_ = {};
    by_storage_ = {};
    entries_.shrink_to_fit();
  }

  // Let go of these entries' values (their statistics were computed from them in Python: sample_reduction.py);
  // the other rows are packed tight again.
  void drop(const std::vector<int64_t>& handles) {
    std::vector<bool> gone(entries_.size(), false);
    for (int64_t h : handles) {
      if (h >= 0 && h < static_cast<int64_t>(entries_.size())) {
        gone[h] = true;
      }
    }
    const std::vector<at::Tensor> old = std::move(tight_);
    std::vector<int64_t> used(old.size(), 0);
    for (size_t k = 0; k < entries_.size(); ++k) {
      if (entries_[k].tight >= 0 && !gone[k]) {
        used[entries_[k].tight] += row_length(entries_[k]);
      }
    }
    NoFunctorch plain;
    tight_.assign(old.size(), at::Tensor());
    for (size_t r = 0; r < old.size(); ++r) {
      if (used[r] > 0) {
        tight_[r] = at::empty({used[r]}, old[r].options());
      }
    }
    std::vector<int64_t> offset(old.size(), 0);
    for (size_t k = 0; k < entries_.size(); ++k) {
      Entry& e = entries_[k];
      if (gone[k]) {
        e.payload = at::Tensor();
      }
      if (e.tight < 0) {
        continue;
      }
      if (gone[k]) {
        e.tight = -1;
        continue;
      }
      const int64_t length = row_length(e);
      tight_[e.tight].narrow(0, offset[e.tight], length).copy_(old[e.tight].narrow(0, e.at, length));
      e.at = offset[e.tight];
      offset[e.tight] += length;
    }
  }

  at::Tensor value_samples(const std::vector<at::Tensor>& values) {
    NoFunctorch plain;
    int64_t total = 0;
    for (const at::Tensor& t : values) {
      total += std::min(t.numel(), sample_size_);
    }
    at::Tensor out = at::empty({total}, at::TensorOptions().dtype(at::kDouble));
    double* dst = out.data_ptr<double>();
    const bool fits = sample_size_ % sample_block_ == 0 && sample_size_ / sample_block_ <= kMaxSampleRuns;
    std::vector<float> floats(sample_size_);
    for (const at::Tensor& original : values) {
      const at::Tensor& t = original;  // read only
      const int64_t n = t.numel(), m = std::min(n, sample_size_);
      if (n <= sample_size_ && plain_cpu(t) && t.scalar_type() == at::kFloat) {
        const float* src = t.const_data_ptr<float>();
        for (int64_t k = 0; k < m; ++k) {
          dst[k] = static_cast<double>(src[k]);
        }
      } else if (n <= sample_size_) {
        out.narrow(0, dst - out.data_ptr<double>(), m).copy_(t.reshape(-1));
      } else if (fits && strided_cpu(t) && t.scalar_type() == at::kFloat) {
        gather<uint32_t>(t, sample_index(n, t.device()), reinterpret_cast<char*>(floats.data()));
        for (int64_t k = 0; k < m; ++k) {
          dst[k] = static_cast<double>(floats[k]);
        }
      } else {
        out.narrow(0, dst - out.data_ptr<double>(), m).copy_(at::take(t, sample_index(n, t.device())));
      }
      dst += m;
    }
    return out;
  }

  // (norm, max |x|, share of zeros, NaN count, Inf count) per handle, for the pass's digest (digest_builder.py):
  // the exact norm and counts when one was taken (leaf gradients), else those of the values held; max |x| and
  // the zeros of a large gradient are its sample's. None where nothing numeric is held.
  py::tuple digest(const std::vector<int64_t>& handles) {
    settle();
    py::list out;
    for (int64_t h : handles) {
      if (h < 0 || h >= static_cast<int64_t>(entries_.size())) {
        out.append(py::none());
        continue;
      }
      const Entry& e = entries_[h];
      if (e.kind == EMPTY) {
        out.append(py::make_tuple(0.0, 0.0, 0.0, 0, 0));
        continue;
      }
      const void* raw = raw_cpu(e);  // a row or a part of the tight tensor on the CPU: read in place, no tensor
      if (raw != nullptr) {
        out.append(digest_numbers(e, raw, e.dtype, row_length(e)));
        continue;
      }
      at::Tensor data;
      if (e.kind == VALUES || e.kind == SMALL || e.kind == SAMPLE) {
        data = held(e);
      } else if (e.kind == DEFER && e.payload.defined() && !e.complex_magnitudes && !odd(e.payload)) {
        data = e.payload;
      }
      if (!data.defined() || !(data.is_floating_point() || data.is_complex())) {
        out.append(py::none());
        continue;
      }
      NoFunctorch plain;
      at::Tensor x = data.is_complex() ? data.abs() : data;
      if (!(x.is_cpu() && x.is_contiguous() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble))) {
        x = x.reshape(-1).to(at::kDouble).cpu().contiguous();
      }
      out.append(digest_numbers(e, x.const_data_ptr(), x.scalar_type(), x.numel()));
    }
    return py::tuple(out);
  }

  // A CPU float32/float64 entry's values in a row or the tight tensor, else nullptr.
  const void* raw_cpu(const Entry& e) const {
    if (!(e.kind == VALUES || e.kind == SMALL || e.kind == SAMPLE) || !e.device.is_cpu() ||
        !(e.dtype == at::kFloat || e.dtype == at::kDouble)) {
      return nullptr;
    }
    const int64_t size = e.dtype == at::kFloat ? 4 : 8;
    if (e.block >= 0) {
      return static_cast<const char*>(blocks_[e.block].const_data_ptr()) + e.row * sample_size_ * size;
    }
    if (e.tight >= 0) {
      return static_cast<const char*>(tight_[e.tight].const_data_ptr()) + e.at * size;
    }
    return nullptr;
  }

  py::tuple digest_numbers(const Entry& e, const void* data, at::ScalarType dtype, int64_t n) const {
    {
      double sumsq = 0, peak_finite = 0;
      int64_t nan = 0, inf = 0, zero = 0;
      auto scan = [&](auto* values) {  // one pass in this thread: a few hundred numbers, no kernel launches
        for (int64_t k = 0; k < n; ++k) {
          const double v = static_cast<double>(values[k]);
          if (std::isnan(v)) {
            ++nan;
          } else if (std::isinf(v)) {
            ++inf;
          } else {
            sumsq += v * v;
            peak_finite = std::max(peak_finite, std::abs(v));
            zero += v == 0 ? 1 : 0;
          }
        }
      };
      if (dtype == at::kFloat) {
        scan(static_cast<const float*>(data));
      } else {
        scan(static_cast<const double*>(data));
      }
      const double zeros = n ? static_cast<double>(zero) / static_cast<double>(n) : 0.0;
      double norm;
      int64_t nans = nan, infs = inf;
      if (e.has_norm) {
        norm = e.norm;
        nans = e.nan;
        infs = e.inf;
      } else {
        const double sq = (nan || inf) ? (nan ? NAN : INFINITY) : std::sqrt(sumsq);
        norm = e.kind == SAMPLE ? sq * std::sqrt(static_cast<double>(e.numel) / static_cast<double>(n)) : sq;
      }
      // the largest finite magnitude, Inf when there is one; NaN only when nothing else is there
      const double peak = infs > 0 ? INFINITY : (nan == n ? NAN : peak_finite);
      return py::make_tuple(norm, peak, zeros, nans, infs);
    }
  }

  int64_t size() const { return static_cast<int64_t>(entries_.size()); }

  void reserve(int64_t count) {  // no regrowth (moving every entry) in the middle of the pass
    entries_.reserve(count);
    seen_.reserve(count);
  }

 private:
  static constexpr int64_t kBlockRows = 256;  // tensors.py's _Rows.BLOCK
  static constexpr int64_t kMaxDims = 16;
  static constexpr int64_t kMaxSampleRuns = 1024;  // gather()'s arrays, on the stack

  // Rows come from blocks allocated a few at a time, as tensors.py's _Rows: hundreds of small allocations
  // between the engine's large gradient buffers would keep the heap from reusing them. The hot path only
  // writes through a pointer; the row's tensor view is made on export.
  struct Rows {
    at::ScalarType dtype;
    at::Device device;
    std::vector<int64_t> blocks;  // indices into blocks_
    int64_t used = 0;
  };

  char* take_row(Entry& e, const at::Tensor& like) {
    Rows* rows = nullptr;
    for (Rows& candidate : rows_) {  // one or two kinds (dtype, device) per pass: a short scan
      if (candidate.dtype == like.scalar_type() && candidate.device == like.device()) {
        rows = &candidate;
        break;
      }
    }
    if (rows == nullptr) {
      rows = &rows_.emplace_back(Rows{like.scalar_type(), like.device(), {}, 0});
    }
    if (rows->used == static_cast<int64_t>(rows->blocks.size()) * kBlockRows) {
      rows->blocks.push_back(static_cast<int64_t>(blocks_.size()));
      blocks_.push_back(take_block(like));
    }
    const int64_t r = rows->used++;
    e.block = rows->blocks[r / kBlockRows];
    e.row = r % kBlockRows;
    const at::Tensor& block = blocks_[e.block];
    return static_cast<char*>(block.data_ptr()) + e.row * sample_size_ * block.element_size();
  }

  // Blocks outlive their pass in a small pool, for the next pass to write into: a fresh block is memory the
  // kernel must map and zero page by page inside the user's backward pass (a thousand page faults per pass on
  // the reference transformer, plus what they do to the allocator's reuse of the engine's own buffers).
  static std::mutex& pool_lock() {
    static std::mutex lock;
    return lock;
  }
  static std::vector<at::Tensor>& pool() {
    static auto* blocks = new std::vector<at::Tensor>();  // never destroyed: no exit-order question
    return *blocks;
  }
  static constexpr int64_t kPoolBytes = 16 << 20;

  at::Tensor take_block(const at::Tensor& like) {
    {
      std::lock_guard<std::mutex> guard(pool_lock());
      auto& blocks = pool();
      for (auto it = blocks.begin(); it != blocks.end(); ++it) {
        // Only a block nothing else sees any more: no row view of it (an exported payload, a trace's
        // values) is alive.
        const bool unshared = it->use_count() == 1 && it->storage().use_count() == 1;
        if (unshared && it->scalar_type() == like.scalar_type() && it->device() == like.device() &&
            it->size(1) == sample_size_) {
          at::Tensor block = std::move(*it);
          blocks.erase(it);
          return block;
        }
      }
    }
    NoFunctorch plain;
    return at::empty({kBlockRows, sample_size_}, at::TensorOptions().dtype(like.scalar_type()).device(like.device()));
  }

  void give_back_blocks() {
    // Views of a block may still be alive (the table was just exported): take_block() waits until they are
    // gone. When the pool is full, a block still in use elsewhere makes room (its views keep their memory).
    std::lock_guard<std::mutex> guard(pool_lock());
    auto& blocks = pool();
    auto bytes = [&blocks]() {
      int64_t total = 0;
      for (const at::Tensor& b : blocks) {
        total += static_cast<int64_t>(b.nbytes());
      }
      return total;
    };
    for (at::Tensor& block : blocks_) {
      if (!block.is_cpu() || odd(block) || !block.has_storage()) {  // only plain blocks outlive their pass
        continue;
      }
      const int64_t size = static_cast<int64_t>(block.nbytes());
      for (auto it = blocks.begin(); bytes() + size > kPoolBytes && it != blocks.end();) {
        const bool shared = it->use_count() > 1 || it->storage().use_count() > 1;
        it = shared ? blocks.erase(it) : it + 1;
      }
      if (bytes() + size <= kPoolBytes) {
        blocks.push_back(std::move(block));
      }
    }
    blocks_.clear();
  }

 public:
  // (blocks in the pool, of which still viewed elsewhere): for tests
  static std::pair<int64_t, int64_t> pool_counts() {
    std::lock_guard<std::mutex> guard(pool_lock());
    int64_t shared = 0;
    for (const at::Tensor& b : pool()) {
      shared += (b.use_count() > 1 || b.storage().use_count() > 1) ? 1 : 0;
    }
    return {static_cast<int64_t>(pool().size()), shared};
  }

 private:
  int64_t row_length(const Entry& e) const { return e.kind == SAMPLE ? sample_size_ : e.numel; }

  // What an entry holds, as a tensor: its row, its part of the tight tensor, or its own payload.
  at::Tensor held(const Entry& e) const {
    if (e.block >= 0) {
      return row_view(e, row_length(e));
    }
    if (e.tight >= 0) {
      return tight_[e.tight].narrow(0, e.at, row_length(e));
    }
    return e.payload;
  }

  at::Tensor row_view(const Entry& e, int64_t length) const {
    return blocks_[e.block].select(0, e.row).narrow(0, 0, length);
  }

  static bool strided_cpu(const at::Tensor& t) {
    // Plain memory we can read through the data pointer: not a zero tensor, a lazily negated or conjugated
    // view, a quantized, nested or Python-subclass tensor (their data means something else, or is elsewhere).
    return t.is_cpu() && t.layout() == at::kStrided && t.has_storage() && t.storage().data() != nullptr &&
           !t.is_neg() && !t.is_conj() && !t._is_zerotensor() && !t.is_quantized() && !t.is_nested() &&
           !t.unsafeGetTensorImpl()->is_python_dispatch() && t.dim() <= kMaxDims;
  }

  static bool plain_cpu(const at::Tensor& t) { return strided_cpu(t) && t.is_contiguous(); }

  void copy_into_row(Entry& e, const at::Tensor& t) {
    char* base = take_row(e, t);
    const int64_t n = t.numel();
    if (plain_cpu(t)) {
      std::memcpy(base, t.const_data_ptr(), n * t.element_size());
    } else {
      row_view(e, n).copy_(t.reshape(-1));
    }
  }

  at::Tensor sample_index(int64_t numel, const at::Device& device) {
    // The same positions as tensors.py's _sample_index, computed with the same torch calls; shared by all
    // passes (shapes repeat), guarded because two threads may each run a recorded pass.
    static std::mutex lock;
    static std::map<std::tuple<int64_t, int64_t, int64_t, int, int>, at::Tensor> cache;
    const auto key = std::make_tuple(numel, sample_size_, sample_block_, static_cast<int>(device.type()),
                                     static_cast<int>(device.index()));
    std::lock_guard<std::mutex> guard(lock);
    auto it = cache.find(key);
    if (it == cache.end()) {
      NoFunctorch plain;  // cached for every later pass
      const int64_t runs = sample_size_ / sample_block_;
      at::Tensor starts = at::linspace(0, numel - sample_block_, runs, at::TensorOptions().dtype(at::kDouble));
      starts = starts.round().to(at::kLong);
      at::Tensor index = (starts.unsqueeze(1) + at::arange(sample_block_, at::kLong)).reshape(-1);
      if (!device.is_cpu()) {
        index = index.to(device);
      }
      if (cache.size() >= 512) {
        cache.clear();
      }
      it = cache.emplace(key, index).first;
    }
    return it->second;
  }

  template <typename T>
  void gather(const at::Tensor& t, const at::Tensor& index, char* base) {
    // take(t, index) for a strided CPU tensor, element bits copied as they are. The index is sample_index()'s:
    // runs of sample_block_ consecutive row-major positions. Gradients are often not contiguous (a linear
    // layer's transposed weight gradient, an expanded sum): at::take copies such a tensor whole first, and
    // even for a contiguous one it pays a dispatch and a parallel region per call.
    int64_t sizes[kMaxDims], strides[kMaxDims];
    int64_t dims = 0;
    for (int64_t d = 0; d < t.dim(); ++d) {  // dims laid out as one are merged: fewer divisions in locate()
      const int64_t size = t.size(d), stride = t.stride(d);
      if (size == 1) {
        continue;
      }
      if (dims > 0 && strides[dims - 1] == stride * size) {
        sizes[dims - 1] *= size;
        strides[dims - 1] = stride;
      } else {
        sizes[dims] = size;
        strides[dims] = stride;
        ++dims;
      }
    }
    if (dims == 0) {
      sizes[0] = 1;
      strides[0] = 0;
      dims = 1;
    }
    auto locate = [&](int64_t position) {  // where a row-major position lies, in elements from the data pointer
      int64_t offset = 0;
      for (int64_t d = dims - 1; d > 0; --d) {
        offset += (position % sizes[d]) * strides[d];
        position /= sizes[d];
      }
      return offset + position * strides[0];
    };
    const T* src = static_cast<const T*>(t.const_data_ptr());
    T* dst = reinterpret_cast<T*>(base);
    const int64_t* at = index.const_data_ptr<int64_t>();
    const int64_t runs = index.numel() / sample_block_;
    const int64_t last = sizes[dims - 1], step = strides[dims - 1];
    int64_t starts[kMaxSampleRuns], columns[kMaxSampleRuns];
    for (int64_t r = 0; r < runs; ++r) {
      // The runs lie far apart (a cache line, often a page, each): ask for all of them before reading any, so
      // the memory system fetches them side by side instead of one miss after another.
      starts[r] = locate(at[r * sample_block_]);
      columns[r] = at[r * sample_block_] % last;
      __builtin_prefetch(src + starts[r]);
    }
    for (int64_t r = 0; r < runs; ++r) {
      int64_t offset = starts[r], column = columns[r];
      T* out = dst + r * sample_block_;
      for (int64_t j = 0; j < sample_block_; ++j) {
        out[j] = src[offset];
        if (++column < last) {
          offset += step;
        } else if (j + 1 < sample_block_) {  // the run goes on into the next row
          column = 0;
          offset = locate(at[r * sample_block_] + j + 1);
        }
      }
    }
  }

  void sample_into_row(Entry& e, const at::Tensor& t) {
    char* base = take_row(e, t);
    const at::Tensor index = sample_index(t.numel(), t.device());
    const int64_t runs = sample_size_ / sample_block_;
    const bool fits = sample_size_ % sample_block_ == 0 && runs <= kMaxSampleRuns;
    if (fits && strided_cpu(t) && t.element_size() == 4) {
      gather<uint32_t>(t, index, base);
    } else if (fits && strided_cpu(t) && t.element_size() == 8) {
      gather<uint64_t>(t, index, base);
    } else if (fits && strided_cpu(t) && t.element_size() == 2) {
      gather<uint16_t>(t, index, base);
    } else if (fits && strided_cpu(t) && t.element_size() == 1) {
      gather<uint8_t>(t, index, base);
    } else {
      at::Tensor row = row_view(e, sample_size_);
      at::take_out(row, t, index);
    }
  }

  int64_t lookup_data(const at::Tensor& t, int64_t version) const {
    // The same data as an earlier entry with an exact norm, unchanged since: same storage (pinned by a weak
    // reference, so the address is not reused), offset, shape, strides, dtype and version counter value.
    if (version < 0 || !t.has_storage()) {
      return -1;
    }
    auto it = by_storage_.find(t.storage().unsafeGetStorageImpl());
    if (it == by_storage_.end()) {
      return -1;
    }
    const Entry& e = entries_[it->second];
    const bool same = !e.storage.expired() && e.version == version && e.offset == t.storage_offset() &&
                      e.dtype == t.scalar_type() && t.sizes().equals(e.shape) && t.strides().equals(e.strides);
    return same ? it->second : -1;
  }

  void take_norm(Entry& e, const at::Tensor& t) {
    // The exact norm while the gradient is still in cache; the same kernel tensors.py's _exact_norms uses.
    if (t.has_storage() && e.version >= 0) {
      e.storage = t.storage().getWeakStorageImpl();
      e.offset = t.storage_offset();
      e.strides = t.strides().vec();
      by_storage_[t.storage().unsafeGetStorageImpl()] = &e - entries_.data();
    }
    // No .item() here: on a GPU that would wait for the device once per leaf; settle() reads them all at once.
    e.norm_value = at::linalg_vector_norm(t, 2);
    e.norm_of = t;
    e.has_norm = true;
  }

 public:
  // The exact norms asked for, read in one go (one device sync), as tensors.py's TensorTable.settle; then
  // the tensors they were taken of are let go.
  void settle() {
    std::vector<Entry*> pending;
    std::vector<at::Tensor> values;
    for (Entry& e : entries_) {
      if (e.norm_value.defined()) {
        pending.push_back(&e);
        values.push_back(e.norm_value.to(at::kDouble).reshape({1}));
      }
    }
    if (pending.empty()) {
      return;
    }
    std::vector<double> norms;
    try {
      const at::Tensor all = at::cat(values).cpu();  // one copy from the device
      norms.assign(all.const_data_ptr<double>(), all.const_data_ptr<double>() + all.numel());
    } catch (const std::exception&) {  // norms on several devices: one read each
      for (const at::Tensor& v : values) {
        norms.push_back(v.item<double>());
      }
    }
    for (size_t k = 0; k < pending.size(); ++k) {
      Entry& e = *pending[k];
      double norm = norms[k];
      if (!std::isfinite(norm)) {  // as tensors.py: count NaN/Inf, or rescale when only the squares overflowed
        const at::Tensor& t = e.norm_of;
        e.nan = at::isnan(t).sum().item<int64_t>();
        e.inf = at::isinf(t).sum().item<int64_t>();
        if (e.nan == 0 && e.inf == 0) {
          const double peak = t.abs().max().item<double>();
          const at::Tensor wide = t.to(at::kDouble);
          norm = (peak == 0 || !std::isfinite(peak))
                     ? at::linalg_vector_norm(wide, 2).item<double>()
                     : peak * at::linalg_vector_norm(wide / peak, 2).item<double>();
        }
      }
      e.norm = norm;
      e.norm_value = at::Tensor();
      e.norm_of = at::Tensor();
    }
  }

 private:
  int64_t max_values_, sample_size_, sample_block_;
  bool keep_full_;

 public:
  bool exact_all_ = false;  // capture="stats": exact statistics of every tensor too large to keep (fused_stats)

 private:
  std::vector<Entry> entries_;
  std::unordered_map<c10::TensorImpl*, int64_t> seen_;
  std::unordered_map<c10::StorageImpl*, int64_t> by_storage_;
  std::vector<at::Tensor> blocks_;
  std::vector<Rows> rows_;
  std::vector<at::Tensor> tight_;  // after compact(): the rows' used parts, one tensor per kind of row
};

class Pass;

NodePtr node_of(PyObject* obj) {
  if (THPFunction_Check(obj)) {
    NodePtr node = GRADTRACE_PY_NODE(reinterpret_cast<THPFunction*>(obj));
    if (!node) {
      throw std::invalid_argument("a custom Function's node that is no longer alive");
    }
    return node;
  }
  if (ag::THPCppFunction_Check(obj)) {
    return reinterpret_cast<ag::THPCppFunction*>(obj)->cdata;
  }
  throw std::invalid_argument("not an autograd node (grad_fn)");
}

// A node's name without its C++ namespace, as Python shows it: "AccumulateGrad", "MulBackward0".
std::string short_name(const ag::Node& node) {
  const std::string name = node.name();
  const size_t colons = name.rfind("::");
  return colons == std::string::npos ? name : name.substr(colons + 2);
}

// short_name() for the walk, which names every node of every pass: Node::name() demangles the C++ type name on
// each call (microseconds), so it is asked once per type. A Python Function's node (PyNode) is named by its
// Python class, so it is asked each time. Called with the GIL held (walk), which guards the cache.
std::string walk_name(const ag::Node& node) {
  // (by its mangled type name: libtorch_python does not export PyNode's type_info to compare with)
  if (std::strcmp(typeid(node).name(), "N5torch8autograd6PyNodeE") == 0) {
    return short_name(node);
  }
  static auto* names = new std::unordered_map<std::type_index, std::string>();  // never destroyed: exit order
  auto it = names->find(std::type_index(typeid(node)));
  if (it == names->end()) {
    it = names->emplace(std::type_index(typeid(node)), short_name(node)).first;
  }
  return it->second;
}

std::atomic<int64_t> live_hooks{0};  // hooks installed and not yet removed, in all passes: tests check 0

struct Hook : ag::FunctionPostHook {
  Pass* pass;
  int64_t node;
  Hook(Pass* p, int64_t i) : pass(p), node(i) { live_hooks.fetch_add(1); }
  ~Hook() override { live_hooks.fetch_sub(1); }
  ag::variable_list operator()(const ag::variable_list& grad_inputs, const ag::variable_list& grad_outputs) override;
};

constexpr int64_t kUnclaimed = INT64_MIN;

// One backward pass: the hooks on its nodes, what they saw, and the table of its tensors.
class Pass {
 public:
  Pass(int64_t max_values, int64_t sample_size, int64_t sample_block, bool keep_full, int64_t jacobian_limit)
      : table(max_values, sample_size, sample_block, keep_full),
        jacobian_limit_(jacobian_limit),
        thread_(std::this_thread::get_id()) {}

  ~Pass() { remove(); }

  // pass_recorder.PassRecorder._walk, in C++: breadth-first from the outputs' nodes in next_functions order.
  // roots: (node, input_nr) per output that has one. Returns the nodes (as Python objects); their names
  // (without a C++ namespace); their edges as (target index or -1, input_nr); per node the input slots more
  // than one edge (or root) feeds; (index, leaf tensor) per AccumulateGrad node; and each root's index.
  // Keeps the nodes and those slots for install().
  py::tuple walk(const std::vector<std::pair<py::object, int64_t>>& roots) {
    std::unordered_map<ag::Node*, int64_t> index;
    std::vector<std::map<int64_t, int64_t>> fan_in;
    std::vector<std::vector<std::pair<int64_t, int64_t>>> edges;
    nodes_.clear();
    auto visit = [&](const NodePtr& node) {
      auto [it, added] = index.emplace(node.get(), static_cast<int64_t>(nodes_.size()));
      if (added) {
        nodes_.push_back(node);
        fan_in.emplace_back();
        edges.emplace_back();
      }
      return it->second;
    };
    py::list root_index;
    for (const auto& [obj, input_nr] : roots) {
      const int64_t i = visit(node_of(obj.ptr()));
      fan_in[i][input_nr] += 1;
      root_index.append(i);
    }
    for (size_t k = 0; k < nodes_.size(); ++k) {  // nodes_ grows as it is walked: a breadth-first queue
      const NodePtr node = nodes_[k];
      for (const ag::Edge& edge : node->next_edges()) {
        if (!edge.is_valid()) {
          edges[k].emplace_back(-1, edge.input_nr);
          continue;
        }
        const int64_t j = visit(edge.function);
        fan_in[j][edge.input_nr] += 1;
        edges[k].emplace_back(j, edge.input_nr);
      }
    }
    // A gradient is recorded once, as the vᵀJ of its producer (its consumer's v reuses the record): about
    // one entry per node, more where sums are formed.
    table.reserve(static_cast<int64_t>(nodes_.size() + nodes_.size() / 2));
    py::list objects, names, many, leaves;
    fresh_.assign(nodes_.size(), {});
    for (size_t k = 0; k < nodes_.size(); ++k) {
      objects.append(py::reinterpret_steal<py::object>(ag::functionToPyObject(nodes_[k])));
      names.append(walk_name(*nodes_[k]));
      py::list slots;
      for (const auto& [slot, count] : fan_in[k]) {
        if (count > 1) {
          slots.append(slot);
          fresh_[k].push_back(slot);
        }
      }
      many.append(slots);
      if (auto* accumulate = dynamic_cast<ag::AccumulateGrad*>(nodes_[k].get())) {
        if (accumulate->variable.defined()) {
          leaves.append(py::make_tuple(static_cast<int64_t>(k), accumulate->variable));
        }
      }
    }
    return py::make_tuple(objects, names, py::cast(edges), many, leaves, root_index);
  }

  // Hooks the nodes walk() found. flags per node: 1 = AccumulateGrad (capture="full" keeps a copy of its v:
  // .grad changes in place later), 2 = its v gets an exact norm, 4 = root (an output's node, which may claim
  // the pass). walk()'s fan-in tells which v slots are fed by several edges (their sum is a new tensor:
  // never reuse a record).
  void install(const std::vector<int64_t>& flags, py::object jacobian) {
    const int64_t count = static_cast<int64_t>(nodes_.size());
    if (static_cast<int64_t>(flags.size()) != count) {
      throw std::invalid_argument("install(): one flag per node walk() found");
    }
    jacobian_ = std::move(jacobian);
    flags_ = flags;
    v_.assign(count, {});
    vjp_.assign(count, {});
    for (int64_t i = 0; i < count; ++i) {
      const NodePtr& node = nodes_[i];
      uintptr_t key = node->add_post_hook(std::make_unique<Hook>(this, i));
      hooked_.emplace_back(node, key);
    }
    nodes_.clear();  // the hooked list holds them until remove()
  }

  void remove() {
    for (auto& [node, key] : hooked_) {
      node->del_post_hook(key);
    }
    hooked_.clear();
    jacobian_ = py::none();  // it refers back to the Python recorder: no cycle once the pass is over
  }

  void set_innermost(bool value) { innermost_.store(value); }

  void run(int64_t i, const ag::variable_list& grad_inputs, const ag::variable_list& grad_outputs) {
    if (!owns_this_run(i)) {
      return;
    }
    const auto started = std::chrono::steady_clock::now();
    struct Clock {  // the time spent in this pass's hooks, for the benchmark's account of where time goes
      std::chrono::steady_clock::time_point started;
      int64_t& total;
      ~Clock() {
        total += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started)
                     .count();
      }
    } clock{started, hook_ns_};
    order_.push_back(i);
    const int64_t flags = flags_[i];
    try {
      std::vector<int64_t>& v = v_[i];
      v.clear();
      if (flags & 1) {
        for (const auto& g : grad_outputs) {
          v.push_back(table.add(g, false, false, false, (flags & 2) != 0, true));
        }
        return;
      }
      const std::vector<int64_t>& fresh = fresh_[i];
      for (size_t k = 0; k < grad_outputs.size(); ++k) {
        const bool is_fresh = std::find(fresh.begin(), fresh.end(), static_cast<int64_t>(k)) != fresh.end();
        v.push_back(table.add(grad_outputs[k], false, false, is_fresh, false, false));
      }
      std::vector<int64_t>& vjp = vjp_[i];
      vjp.clear();
      for (const auto& g : grad_inputs) {
        vjp.push_back(table.add(g, false, false, false, false, false));
      }
    } catch (const std::exception& exc) {  // recording must never break the pass
      // hooked_ is in node order until remove()
      notes_.push_back(short_name(*hooked_[i].first) + ": could not record (" + exc.what() + ")");
      return;
    }
    if (jacobian_limit_ > 0 && fits(grad_outputs) && fits(grad_inputs) && !jacobian_.is_none()) {
      // Small enough for its local Jacobian: that calls the node again, which is Python's job.
      // False: the pass's budget of local Jacobians is spent (jacobian_budget.py): no more calls this pass.
      py::gil_scoped_acquire gil;
      if (jacobian_(i, grad_inputs, grad_outputs).is(py::bool_(false))) {
        jacobian_ = py::none();
      }
    }
  }

  py::tuple results() const { return py::make_tuple(order_, notes_, claimed_task()); }

  double hook_seconds() const { return static_cast<double>(hook_ns_) * 1e-9; }

  py::tuple handles() const { return py::make_tuple(py::cast(v_), py::cast(vjp_)); }

  // Parameters' value samples for the pass's digest (digest_builder.py), as one float64 tensor: each whole up to
  // sample_size elements, else the elements at the positions its gradient is sampled at. A None for a tensor
  // this cannot read (then digest_builder.py reads it).
  at::Tensor value_samples(const std::vector<at::Tensor>& values) { return table.value_samples(values); }

  // One node's v handle (-1 when it has none): what a leaf's gradient is, without exporting every node's.
  int64_t v_handle(int64_t node, int64_t slot) const {
    if (node < 0 || node >= static_cast<int64_t>(v_.size()) || slot < 0 ||
        slot >= static_cast<int64_t>(v_[node].size())) {
      return -1;
    }
    return v_[node][slot];
  }

  Table table;

 private:
  bool fits(const ag::variable_list& grads) const {
    int64_t total = 0;
    for (const auto& g : grads) {
      if (g.defined()) {
        total += g.numel();
        if (total > jacobian_limit_) {
          return false;
        }
      }
    }
    return true;
  }

  bool owns_this_run(int64_t i) {
    // As pass_recorder.PassRecorder._owns_this_run: a node shared by several passes fires every pass's
    // hooks, and only the pass the engine is running now records it.
    const int64_t task = ag::get_current_graph_task_id();
    const int64_t claimed = task_.load();
    if (claimed != kUnclaimed) {
      return task == claimed;
    }
    const bool mine = (std::this_thread::get_id() == thread_ && innermost_.load()) || (flags_[i] & 4);
    if (mine) {
      task_.store(task);
    }
    return mine;
  }

  int64_t claimed_task() const {
    const int64_t claimed = task_.load();
    return claimed == kUnclaimed ? -1 : claimed;
  }

  int64_t jacobian_limit_;
  std::thread::id thread_;
  std::atomic<bool> innermost_{false};
  std::atomic<int64_t> task_{kUnclaimed};
  py::object jacobian_;
  std::vector<int64_t> flags_;
  std::vector<std::vector<int64_t>> fresh_;
  std::vector<NodePtr> nodes_;  // walk() -> install()
  std::vector<std::pair<NodePtr, uintptr_t>> hooked_;
  std::vector<int64_t> order_;
  std::vector<std::vector<int64_t>> v_, vjp_;
  std::vector<std::string> notes_;
  int64_t hook_ns_ = 0;
};

ag::variable_list Hook::operator()(const ag::variable_list& grad_inputs, const ag::variable_list& grad_outputs) {
  pass->run(node, grad_inputs, grad_outputs);
  return grad_inputs;
}

// ---- Exact statistics in one pass over memory (capture="stats"; tracer/record/tensors.py's exact_stats) ----
//
// norm, min, max, sum, nonzero count, NaN count and Inf count of a tensor, each element read once, instead of
// the five reductions (aminmax, vector_norm, sum, count_nonzero, isnan/isinf) that read it five times. Sums
// and squares accumulate in blocks of sixteen-lane float sums added in double (see fused_chunk), per
// chunk (the compiler keeps them in vector registers), and the chunks (fixed size, so the result does not
// depend on the number of threads) are combined in order.
struct FusedPart {
  double sum = 0, squares = 0, low = INFINITY, high = -INFINITY;
  int64_t nonzero = 0, nan = 0, inf = 0;
};

constexpr int64_t kFusedChunk = 1 << 16;

// An element as double: float16 and bfloat16 through float (their own conversion), float and double as they are.
inline double widen(double x) { return x; }
template <typename T>
inline double widen(T x) {
  return static_cast<double>(static_cast<float>(x));
}

// Sum, squares, NaN and Inf of data[begin, end) element by element in double (no min/max/zeros: the caller's).
template <typename T>
void fused_exactly(const T* data, int64_t begin, int64_t end, FusedPart& part) {
  for (int64_t i = begin; i < end; ++i) {
    const double x = widen(data[i]);
    part.nan += std::isnan(x);
    part.inf += std::isinf(x);
    part.sum += x;
    part.squares += x * x;
  }
}

// The chunk loop is compiled at -O3 (vectorised: the sixteen lanes fill vector registers), and twice on x86-64:
// for AVX2 and for the baseline, picked at run time (fused_chunk_for).
#pragma GCC push_options
#pragma GCC optimize("O3")

template <typename T>
inline __attribute__((always_inline)) FusedPart fused_chunk(const T* data, int64_t begin, int64_t end) {
  // Blocks of kBlock elements: inside a block, kLanes float lanes (a float64 tensor: double lanes) add 16
  // values each, a rounding error of a few float ulps; each block's sums are then added in double. A block
  // whose squares are not finite (NaN, Inf, or float32 squares beyond 3.4e38) is read again in double and its
  // NaN and Inf counted: rare, and exact.
  using Acc = typename std::conditional<std::is_same<T, double>::value, double, float>::type;
  constexpr int kLanes = 16;
  constexpr int64_t kBlock = kLanes * 16;
  FusedPart part;
  Acc low[kLanes], high[kLanes];
  for (int k = 0; k < kLanes; ++k) {
    low[k] = std::numeric_limits<Acc>::infinity();
    high[k] = -std::numeric_limits<Acc>::infinity();
  }
  int64_t start = begin;
  for (; start + kBlock <= end; start += kBlock) {
    Acc sum[kLanes] = {}, squares[kLanes] = {};
    int32_t nonzero[kLanes] = {};
    for (int64_t i = start; i < start + kBlock; i += kLanes) {
      for (int k = 0; k < kLanes; ++k) {
        const Acc x = static_cast<Acc>(data[i + k]);
        sum[k] += x;
        squares[k] += x * x;
        low[k] = x < low[k] ? x : low[k];
        high[k] = x > high[k] ? x : high[k];
        nonzero[k] += x != Acc(0);
      }
    }
    double block_sum = 0, block_squares = 0;
    for (int k = 0; k < kLanes; ++k) {
      block_sum += sum[k];
      block_squares += squares[k];
      part.nonzero += nonzero[k];
    }
    if (std::isfinite(block_squares)) {
      part.sum += block_sum;
      part.squares += block_squares;
    } else {
      fused_exactly(data, start, start + kBlock, part);
    }
  }
  for (int k = 0; k < kLanes; ++k) {
    part.low = low[k] < part.low ? low[k] : part.low;
    part.high = high[k] > part.high ? high[k] : part.high;
  }
  if (start < end) {  // the ragged tail: element by element, in double
    for (int64_t i = start; i < end; ++i) {
      const double x = widen(data[i]);
      part.low = x < part.low ? x : part.low;
      part.high = x > part.high ? x : part.high;
      part.nonzero += x != 0.0;
    }
    fused_exactly(data, start, end, part);
  }
  return part;
}

template <typename T>
FusedPart fused_chunk_baseline(const T* data, int64_t begin, int64_t end) {
  return fused_chunk<T>(data, begin, end);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
template <typename T>
__attribute__((target("avx2,fma"))) FusedPart fused_chunk_avx2(const T* data, int64_t begin, int64_t end) {
  return fused_chunk<T>(data, begin, end);
}
#endif

#pragma GCC pop_options

template <typename T>
FusedPart fused_chunk_for(const T* data, int64_t begin, int64_t end) {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2) {
    return fused_chunk_avx2<T>(data, begin, end);
  }
#endif
  return fused_chunk_baseline<T>(data, begin, end);
}

// One float64 row (norm, min, max, sum, nonzero, nan, inf), or an empty tensor for what this does not read (not
// on the CPU, not dense and contiguous, not float16/bfloat16/float32/float64, no elements): tensors.py then
// uses torch's reductions. A float64 tensor whose squares overflow gives norm inf: tensors.py rescales it.
at::Tensor fused_stats(const at::Tensor& given) {
  const auto type = given.scalar_type();
  const bool readable = given.defined() && given.device().is_cpu() && given.layout() == at::kStrided &&
                        given.numel() > 0 && !functorch_wrapped(given) &&
                        (type == at::kFloat || type == at::kDouble || type == at::kHalf || type == at::kBFloat16);
  // A transposed or expanded gradient goes to torch's reductions, which read strides: a contiguous copy per
  // gradient raised the peak memory of a capture="stats" pass by a quarter (glibc keeps the freed copies' heap).
  if (!readable || !given.is_contiguous() || given.is_neg()) {
    return at::empty({0}, at::kDouble);
  }
  const at::Tensor& t = given;
  const int64_t n = t.numel();
  const int64_t chunks = (n + kFusedChunk - 1) / kFusedChunk;
  std::vector<FusedPart> parts(static_cast<size_t>(chunks));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, type, "fused_stats", [&] {
    const scalar_t* data = t.const_data_ptr<scalar_t>();
    at::parallel_for(0, chunks, 1, [&](int64_t first, int64_t last) {
      for (int64_t c = first; c < last; ++c) {
        parts[static_cast<size_t>(c)] = fused_chunk_for<scalar_t>(data, c * kFusedChunk, std::min(n, (c + 1) * kFusedChunk));
      }
    });
  });
  FusedPart all;
  for (const auto& part : parts) {  // in chunk order: the same sums for any number of threads
    all.sum += part.sum;
    all.squares += part.squares;
    all.low = part.low < all.low ? part.low : all.low;
    all.high = part.high > all.high ? part.high : all.high;
    all.nonzero += part.nonzero;
    all.nan += part.nan;
    all.inf += part.inf;
  }
  if (all.nan > 0) {  // as torch.aminmax: NaN anywhere makes both NaN
    all.low = all.high = NAN;
  }
  double norm = std::sqrt(all.squares);
  if (std::isinf(norm) && all.nan == 0 && all.inf == 0) {
    // float64 elements whose squares overflow: the norm of the elements scaled by the largest magnitude (rare)
    const double peak = std::max(std::fabs(all.low), std::fabs(all.high));
    norm = peak * at::linalg_vector_norm(t.to(at::kDouble) / peak, 2).item<double>();
  }
  at::Tensor row = at::empty({7}, at::kDouble);
  double* out = row.data_ptr<double>();
  out[0] = norm;
  out[1] = all.low;
  out[2] = all.high;
  out[3] = all.sum;
  out[4] = static_cast<double>(all.nonzero);
  out[5] = static_cast<double>(all.nan);
  out[6] = static_cast<double>(all.inf);
  return row;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "gradtrace's native post-hooks and tensor table (see tracer/record/native/loader.py)";
  m.def("live_hooks", []() { return live_hooks.load(); });
  m.def("pooled_blocks", []() { return Table::pool_counts(); });
  m.def("fused_stats", &fused_stats);  // exact statistics in one pass (tensors.py's exact_stats)
  py::class_<Pass>(m, "Pass")
      .def(py::init<int64_t, int64_t, int64_t, bool, int64_t>())
      .def("walk", &Pass::walk)
      .def("install", &Pass::install)
      .def("remove", &Pass::remove)
      .def("set_innermost", &Pass::set_innermost)
      .def("results", &Pass::results)
      .def("handles", &Pass::handles)
      .def("hook_seconds", &Pass::hook_seconds)
      .def("add",
           [](Pass& self, const at::Tensor& t, bool exact, bool copy, bool fresh, bool exact_norm, bool keep_copy) {
             return self.table.add(t, exact, copy, fresh, exact_norm, keep_copy);
           })
      .def("size", [](Pass& self) { return self.table.size(); })
      .def("exact_statistics", [](Pass& self) { self.table.exact_all_ = true; })
      .def("export_entries", [](Pass& self) { return self.table.export_entries(); })
      .def("settle", [](Pass& self) { self.table.settle(); })
      .def("clear", [](Pass& self) { self.table.clear(); })
      .def("compact", [](Pass& self) { self.table.compact(); })
      .def("drop", [](Pass& self, const std::vector<int64_t>& handles) { self.table.drop(handles); })
      .def("value_samples", &Pass::value_samples)
      .def("digest", [](Pass& self, const std::vector<int64_t>& handles) { return self.table.digest(handles); })
      .def("v_handle", [](const Pass& self, int64_t node, int64_t slot) { return self.v_handle(node, slot); });
}
