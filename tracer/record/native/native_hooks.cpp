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
      at::Tensor payload = e.payload;
      if (e.block >= 0) {
        const int64_t length = e.kind == SAMPLE ? sample_size_ : e.numel;
        payload = row_view(e, length);
      }
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
    entries_.clear();
    seen_.clear();
    by_storage_.clear();
    give_back_blocks();
    rows_.clear();
  }

  ~Table() { give_back_blocks(); }

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
  std::vector<Entry> entries_;
  std::unordered_map<c10::TensorImpl*, int64_t> seen_;
  std::unordered_map<c10::StorageImpl*, int64_t> by_storage_;
  std::vector<at::Tensor> blocks_;
  std::vector<Rows> rows_;
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
      py::gil_scoped_acquire gil;
      jacobian_(i, grad_inputs, grad_outputs);
    }
  }

  py::tuple results() const { return py::make_tuple(order_, notes_, claimed_task()); }

  double hook_seconds() const { return static_cast<double>(hook_ns_) * 1e-9; }

  py::tuple handles() const { return py::make_tuple(py::cast(v_), py::cast(vjp_)); }

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

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "gradtrace's native post-hooks and tensor table (see tracer/record/native/loader.py)";
  m.def("live_hooks", []() { return live_hooks.load(); });
  m.def("pooled_blocks", []() { return Table::pool_counts(); });
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
      .def("export_entries", [](Pass& self) { return self.table.export_entries(); })
      .def("settle", [](Pass& self) { self.table.settle(); })
      .def("clear", [](Pass& self) { self.table.clear(); });
}
