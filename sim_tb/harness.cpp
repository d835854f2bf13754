// rtlgen's compiled testbench: drives a Verilated rtlgen design (model class Vtop) from files.
//
// Built by rtlgen.sim_tb.harness_cpp (which also writes rtlgen_ports.h: the clock, reset and
// port prefixes of the design) and run as `harness DIR`. DIR holds config.txt (numbers only,
// written by harness_cpp.py), in<k>.bin (input k's elements, sample after sample, each an
// unsigned little-endian integer of 1, 2, 4 or 8 bytes), and receives, per output k,
// out<k>.data (every handshaked beat's elements, sign-extended to int64), out<k>.meta (per beat:
// handshake cycle, tlast, tuser as int64), per input k in<k>.first (handshake cycle of each
// sample's first beat) and summary.txt. Python checks the outputs (harness_cpp.py): there is
// no Python per cycle.
//
// Cycle semantics are those of the cocotb testbench (tb_axis.py): after each rising edge the
// sources and sinks drive their outputs, the design settles, then each handshake is sampled
// and counted as transferred at the next edge (edge number + 1). Pauses come from CPython's
// own Mersenne Twister (random.Random seeded with the same string as tb_axis.random_pauses;
// Python passes the seed's key words), so the same seed gives the same gaps and tready pattern
// in both harnesses.

#include <chrono>
#include <cinttypes>
#include <ctime>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

// ----------------------------------------------------------- CPython's random.Random
class PyRandom {
  public:
    explicit PyRandom(const std::vector<uint32_t>& key) { init_by_array(key); }
    // random.Random.random(): 53 random bits in [0, 1)
    double random() {
        const uint32_t a = next() >> 5, b = next() >> 6;
        return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
    }

  private:
    static constexpr int N = 624, M = 397;
    uint32_t mt[N];
    int index = N + 1;

    void init_genrand(uint32_t s) {
        mt[0] = s;
        for (index = 1; index < N; index++)
            mt[index] = 1812433253U * (mt[index - 1] ^ (mt[index - 1] >> 30)) + index;
    }
    void init_by_array(const std::vector<uint32_t>& key) {
        init_genrand(19650218U);
        int i = 1;
        size_t j = 0;
        const size_t length = key.size();
        for (size_t k = (N > length ? N : length); k; k--) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525U)) + key[j] + uint32_t(j);
            i++;
            j++;
            if (i >= N) { mt[0] = mt[N - 1]; i = 1; }
            if (j >= length) j = 0;
        }
        for (int k = N - 1; k; k--) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941U)) - i;
            i++;
            if (i >= N) { mt[0] = mt[N - 1]; i = 1; }
        }
        mt[0] = 0x80000000U;
    }
    uint32_t next() {
        static const uint32_t mag01[2] = {0x0U, 0x9908b0dfU};
        uint32_t y;
        if (index >= N) {
            int kk;
            for (kk = 0; kk < N - M; kk++) {
                y = (mt[kk] & 0x80000000U) | (mt[kk + 1] & 0x7fffffffU);
                mt[kk] = mt[kk + M] ^ (y >> 1) ^ mag01[y & 0x1U];
            }
            for (; kk < N - 1; kk++) {
                y = (mt[kk] & 0x80000000U) | (mt[kk + 1] & 0x7fffffffU);
                mt[kk] = mt[kk + (M - N)] ^ (y >> 1) ^ mag01[y & 0x1U];
            }
            y = (mt[N - 1] & 0x80000000U) | (mt[0] & 0x7fffffffU);
            mt[N - 1] = mt[M - 1] ^ (y >> 1) ^ mag01[y & 0x1U];
            index = 0;
        }
        y = mt[index++];
        y ^= (y >> 11);
        y ^= (y << 7) & 0x9d2c5680U;
        y ^= (y << 15) & 0xefc60000U;
        y ^= (y >> 18);
        return y;
    }
};

// tb_axis.random_pauses: one flag per call, true with `probability` (never drawn at 0)
struct Pauses {
    double probability = 0.0;
    std::unique_ptr<PyRandom> rng;
    bool next() { return probability > 0.0 && rng->random() < probability; }
};

// ----------------------------------------------------------- ports of any width
// A port seen as little-endian 32-bit words: CData/SData/IData/QData or VlWide<N>.
struct Bits {
    virtual ~Bits() = default;
    virtual int words() const = 0;
    virtual void set(const uint32_t* w) = 0;
    virtual void get(uint32_t* w) const = 0;
};

template <class T>
struct ScalarBits final : Bits {
    T& port;
    explicit ScalarBits(T& p) : port(p) {}
    int words() const override { return sizeof(T) > 4 ? 2 : 1; }
    void set(const uint32_t* w) override {
        uint64_t v = w[0];
        if (sizeof(T) > 4) v |= uint64_t(w[1]) << 32;
        port = static_cast<T>(v);
    }
    void get(uint32_t* w) const override {
        const uint64_t v = port;
        w[0] = uint32_t(v);
        if (sizeof(T) > 4) w[1] = uint32_t(v >> 32);
    }
};

template <std::size_t N>
struct WideBits final : Bits {
    VlWide<N>& port;
    explicit WideBits(VlWide<N>& p) : port(p) {}
    int words() const override { return int(N); }
    void set(const uint32_t* w) override { std::memcpy(port.data(), w, N * sizeof(uint32_t)); }
    void get(uint32_t* w) const override { std::memcpy(w, port.data(), N * sizeof(uint32_t)); }
};

template <class T>
static std::unique_ptr<Bits> bits_of(T& port) {
    return std::unique_ptr<Bits>(new ScalarBits<T>(port));
}
template <std::size_t N>
static std::unique_ptr<Bits> bits_of(VlWide<N>& port) {
    return std::unique_ptr<Bits>(new WideBits<N>(port));
}

// opt_<port>(model, 0): the port's Bits if the model has it (tlast, tuser), else nullptr
#define RTLGEN_OPTIONAL_PORT(name)                                                          \
    template <class Model>                                                                  \
    static auto opt_##name(Model* m, int)->decltype(bits_of(m->name)) { return bits_of(m->name); } \
    template <class Model>                                                                  \
    static std::unique_ptr<Bits> opt_##name(Model*, long) { return nullptr; }

// rtlgen_ports.h defines RTLGEN_CLOCK, RTLGEN_RESET, RTLGEN_INPUTS(X), RTLGEN_OUTPUTS(X)
#include "rtlgen_ports.h"

#define RTLGEN_OPTIONALS(prefix) \
    RTLGEN_OPTIONAL_PORT(prefix##_tlast) RTLGEN_OPTIONAL_PORT(prefix##_tuser)
RTLGEN_INPUTS(RTLGEN_OPTIONALS)
RTLGEN_OUTPUTS(RTLGEN_OPTIONALS)

[[noreturn]] static void fail(const std::string& message) {
    std::fprintf(stderr, "rtlgen harness: %s\n", message.c_str());
    std::exit(3);
}

static FILE* open_file(const std::string& path, const char* mode) {
    FILE* file = std::fopen(path.c_str(), mode);
    if (!file) fail("cannot open " + path);
    static const size_t BUFFER = 1 << 20;
    std::setvbuf(file, nullptr, _IOFBF, BUFFER);
    return file;
}

static uint64_t width_mask(int width) { return width >= 64 ? ~uint64_t(0) : (uint64_t(1) << width) - 1; }

// element e (width bits) of a word array: put / take
static void put_element(uint32_t* words, int e, int width, uint64_t value) {
    const uint64_t start = uint64_t(e) * width;
    for (int done = 0; done < width;) {
        const uint64_t bit = start + done;
        const int offset = int(bit % 32), take = std::min(32 - offset, width - done);
        words[bit / 32] |= uint32_t((value >> done) & width_mask(take)) << offset;
        done += take;
    }
}

static uint64_t take_element(const uint32_t* words, int e, int width) {
    const uint64_t start = uint64_t(e) * width;
    uint64_t value = 0;
    for (int done = 0; done < width;) {
        const uint64_t bit = start + done;
        const int offset = int(bit % 32), take = std::min(32 - offset, width - done);
        value |= uint64_t((words[bit / 32] >> offset) & width_mask(take)) << done;
        done += take;
    }
    return value;
}

// ----------------------------------------------------------- source and sink
struct Source {  // tb_axis.AxisSource
    std::string name;
    std::unique_ptr<Bits> tdata, tlast;
    CData* tvalid;
    CData* tready;
    int elements = 0, width = 0, bytes = 0, beats_per_sample = 0;
    uint64_t beats = 0, loaded = 0, taken = 0, stalled = 0;
    bool presenting = false;
    Pauses pauses;
    FILE* file = nullptr;
    std::vector<uint32_t> words;
    std::vector<uint8_t> raw;
    std::vector<int64_t> first_cycles;

    void load() {  // the next beat onto tdata/tlast
        if (std::fread(raw.data(), 1, raw.size(), file) != raw.size()) fail("input file of " + name + " too short");
        std::fill(words.begin(), words.end(), 0);
        for (int e = 0; e < elements; e++) {
            uint64_t value = 0;
            for (int b = 0; b < bytes; b++) value |= uint64_t(raw[size_t(e) * bytes + b]) << (8 * b);
            put_element(words.data(), e, width, value & width_mask(width));
        }
        tdata->set(words.data());
        const uint32_t last = (loaded % beats_per_sample) == uint64_t(beats_per_sample - 1);
        if (tlast) tlast->set(&last);
        loaded++;
    }
    void drive() {  // right after an edge
        if (!presenting && loaded < beats && !pauses.next()) {
            load();
            presenting = true;
        }
        *tvalid = presenting;
    }
    void sample(int64_t cycle) {  // settled, before the next edge
        if (!presenting) return;
        if (*tready & 1) {
            if (taken % beats_per_sample == 0) first_cycles.push_back(cycle + 1);
            taken++;
            presenting = false;
        } else {
            stalled++;
        }
    }
};

struct Sink {  // tb_axis.AxisSink
    std::string name;
    std::unique_ptr<Bits> tdata, tlast, tuser;
    CData* tvalid;
    CData* tready;
    int elements = 0, width = 0;
    bool is_signed = false, with_tuser = false, ready = false;
    uint64_t wanted = 0, received = 0;
    Pauses pauses;
    FILE* data = nullptr;
    FILE* meta = nullptr;
    std::vector<uint32_t> words, user_words;
    std::vector<int64_t> values;

    void drive() {
        ready = !pauses.next();
        *tready = ready;
    }
    void sample(int64_t cycle) {
        if (!ready || !(*tvalid & 1)) return;
        tdata->get(words.data());
        const uint64_t mask = width_mask(width), sign = uint64_t(1) << (width - 1);
        for (int e = 0; e < elements; e++) {
            uint64_t value = take_element(words.data(), e, width);
            if (is_signed && (value & sign)) value |= ~mask;
            values[e] = int64_t(value);
        }
        std::fwrite(values.data(), sizeof(int64_t), values.size(), data);
        uint32_t last[2] = {0, 0};
        if (tlast) tlast->get(last);
        int64_t user = 0;
        if (with_tuser) {
            std::fill(user_words.begin(), user_words.end(), 0);
            tuser->get(user_words.data());
            user = int64_t(uint64_t(user_words[0]) | (uint64_t(user_words[1]) << 32));
        }
        const int64_t record[3] = {cycle + 1, int64_t(last[0] & 1), user};
        std::fwrite(record, sizeof(int64_t), 3, meta);
        received++;
    }
};

// ----------------------------------------------------------- config.txt
struct Config {
    FILE* file;
    std::string path;
    int64_t integer(const char* what) {
        long long value;
        if (std::fscanf(file, "%lld", &value) != 1) fail(path + ": expected " + what);
        return value;
    }
    double real(const char* what) {
        double value;
        if (std::fscanf(file, "%lf", &value) != 1) fail(path + ": expected " + what);
        return value;
    }
    Pauses pauses() {
        Pauses p;
        p.probability = real("pause probability");
        std::vector<uint32_t> key(size_t(integer("seed key length")));
        for (auto& word : key) word = uint32_t(integer("seed key word"));
        if (p.probability > 0.0) p.rng.reset(new PyRandom(key));
        return p;
    }
};

int main(int argc, char** argv) {
    if (argc != 2) fail("usage: harness DIR (see harness.cpp)");
    const std::string dir = argv[1];
    auto context = std::unique_ptr<VerilatedContext>(new VerilatedContext);
    auto top = std::unique_ptr<Vtop>(new Vtop{context.get()});

    std::vector<Source> sources;
    std::vector<Sink> sinks;
#define RTLGEN_BIND_SOURCE(prefix)                                                               \
    sources.emplace_back();                                                                      \
    sources.back().name = #prefix;                                                               \
    sources.back().tdata = bits_of(top->prefix##_tdata);                                         \
    sources.back().tlast = opt_##prefix##_tlast(top.get(), 0);                                   \
    sources.back().tvalid = &top->prefix##_tvalid;                                               \
    sources.back().tready = &top->prefix##_tready;
#define RTLGEN_BIND_SINK(prefix)                                                                 \
    sinks.emplace_back();                                                                        \
    sinks.back().name = #prefix;                                                                 \
    sinks.back().tdata = bits_of(top->prefix##_tdata);                                           \
    sinks.back().tlast = opt_##prefix##_tlast(top.get(), 0);                                     \
    sinks.back().tuser = opt_##prefix##_tuser(top.get(), 0);                                     \
    sinks.back().tvalid = &top->prefix##_tvalid;                                                 \
    sinks.back().tready = &top->prefix##_tready;
    RTLGEN_INPUTS(RTLGEN_BIND_SOURCE)
    RTLGEN_OUTPUTS(RTLGEN_BIND_SINK)

    Config config{open_file(dir + "/config.txt", "r"), dir + "/config.txt"};
    const int64_t samples = config.integer("samples");
    const int64_t reset_cycles = config.integer("reset cycles");
    const int reset_active = int(config.integer("reset level"));
    const int64_t budget = config.integer("cycle budget");
    const int64_t settle = config.integer("settle cycles");
    if (config.integer("inputs") != int64_t(sources.size())) fail("config.txt: input count differs from the build");
    for (size_t k = 0; k < sources.size(); k++) {
        Source& s = sources[k];
        s.elements = int(config.integer("elements per beat"));
        s.width = int(config.integer("element width"));
        s.bytes = int(config.integer("bytes per element"));
        s.beats_per_sample = int(config.integer("beats per sample"));
        s.pauses = config.pauses();
        if (int64_t(s.elements) * s.width > int64_t(s.tdata->words()) * 32)
            fail(s.name + "_tdata is narrower than " + std::to_string(s.elements) + " elements of " +
                 std::to_string(s.width) + " bits");
        s.beats = uint64_t(samples) * s.beats_per_sample;
        s.words.assign(size_t(s.tdata->words()), 0);
        s.raw.assign(size_t(s.elements) * s.bytes, 0);
        s.file = open_file(dir + "/in" + std::to_string(k) + ".bin", "rb");
    }
    if (config.integer("outputs") != int64_t(sinks.size())) fail("config.txt: output count differs from the build");
    for (size_t k = 0; k < sinks.size(); k++) {
        Sink& s = sinks[k];
        s.elements = int(config.integer("elements per beat"));
        s.width = int(config.integer("element width"));
        s.is_signed = config.integer("signed") != 0;
        s.wanted = uint64_t(samples) * uint64_t(config.integer("beats per sample"));
        s.with_tuser = config.integer("classes") != 0;
        s.pauses = config.pauses();
        if (s.with_tuser && !s.tuser)
            fail("manifest output on " + s.name + " has classes but the design has no " + s.name + "_tuser");
        if (int64_t(s.elements) * s.width > int64_t(s.tdata->words()) * 32)
            fail(s.name + "_tdata is narrower than " + std::to_string(s.elements) + " elements of " +
                 std::to_string(s.width) + " bits");
        if (s.with_tuser && s.tuser->words() > 2) fail(s.name + "_tuser is wider than 64 bits");
        s.words.assign(size_t(s.tdata->words()), 0);
        s.user_words.assign(2, 0);
        s.values.assign(size_t(s.elements), 0);
        s.data = open_file(dir + "/out" + std::to_string(k) + ".data", "wb");
        s.meta = open_file(dir + "/out" + std::to_string(k) + ".meta", "wb");
    }
    std::fclose(config.file);

    // reset (tb_network._reset): reset_cycles edges with the reset active, then one more edge
    for (auto& s : sources) *s.tvalid = 0;
    for (auto& s : sinks) *s.tready = 0;
    top->RTLGEN_CLOCK = 0;
    top->RTLGEN_RESET = reset_active;
    top->eval();
    for (int64_t i = 0; i <= reset_cycles; i++) {
        if (i == reset_cycles) top->RTLGEN_RESET = !reset_active;
        top->RTLGEN_CLOCK = 1;
        top->eval();
        top->RTLGEN_CLOCK = 0;
        top->eval();
    }

    const auto started = std::chrono::steady_clock::now();
    const std::clock_t cpu_started = std::clock();
    double seconds = 0.0, cpu_seconds = 0.0;
    int64_t cycle = 0, end_cycle = 0, after = -1;  // after: edges left once every beat is out
    bool complete = false;
    while (true) {
        top->RTLGEN_CLOCK = 1;
        top->eval();
        cycle++;
        top->RTLGEN_CLOCK = 0;
        for (auto& s : sources) s.drive();
        for (auto& s : sinks) s.drive();
        top->eval();
        for (auto& s : sources) s.sample(cycle);
        for (auto& s : sinks) s.sample(cycle);
        if (after > 0) {
            if (--after == 0) break;
            continue;
        }
        bool all = true;
        for (auto& s : sinks) all = all && s.received >= s.wanted;
        if (all) {
            complete = true;
            seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            cpu_seconds = double(std::clock() - cpu_started) / CLOCKS_PER_SEC;
            end_cycle = cycle + 1;  // the last beat's handshake edge
            after = settle;
            if (after <= 0) break;
        } else if (cycle >= budget) {
            seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            cpu_seconds = double(std::clock() - cpu_started) / CLOCKS_PER_SEC;
            end_cycle = cycle;
            break;
        }
    }
    top->final();

    for (size_t k = 0; k < sources.size(); k++) {
        FILE* first = open_file(dir + "/in" + std::to_string(k) + ".first", "wb");
        auto& cycles = sources[k].first_cycles;
        std::fwrite(cycles.data(), sizeof(int64_t), cycles.size(), first);
        std::fclose(first);
        std::fclose(sources[k].file);
    }
    for (auto& s : sinks) {
        std::fclose(s.data);
        std::fclose(s.meta);
    }
    FILE* summary = open_file(dir + "/summary.txt", "w");
    std::fprintf(summary, "complete %d\nend_cycle %" PRId64 "\ncycles_run %" PRId64
                 "\nseconds %.9g\ncpu_seconds %.9g\n",
                 int(complete), end_cycle, cycle, seconds, cpu_seconds);
    for (auto& s : sources)
        std::fprintf(summary, "input %" PRIu64 " %" PRIu64 "\n", s.taken, s.stalled);
    std::fclose(summary);
    return 0;
}
