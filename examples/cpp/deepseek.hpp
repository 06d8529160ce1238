// examples/cpp/deepseek.hpp — a small header-only C++17 wrapper over the libdeepseek C API.
//
//   deepseek::Model model("model.gguf");
//   deepseek::Session session(model, [](ds_session_params &p) { p.temperature = 0.7f; });
//   session.feed_text("Once upon a time");
//   while (session.step()) {                      // false once the generation stopped
//       for (auto &piece : session.text()) std::cout << piece.text;
//   }
//
// - Handles are move-only RAII objects (std::unique_ptr with the library's close function).
// - Every failing call throws deepseek::Error, which carries the ds_status and the library's
//   detailed message (what() = "<status>: <message>").
// - Strings are UTF-8 std::string / std::string_view; token ids are int32_t.
// Only the C API is used, so this header is an example of binding the stable C ABI, not part
// of it: copy it into a project and extend it as needed.
#ifndef DEEPSEEK_EXAMPLE_HPP
#define DEEPSEEK_EXAMPLE_HPP

#include <deepseek/chat.h>
#include <deepseek/deepseek.h>
#include <deepseek/session.h>
#include <deepseek/tokenizer.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace deepseek {

/// A failed libdeepseek call: the status and the library's message.
class Error : public std::runtime_error {
public:
    Error(ds_status status, const std::string &message)
        : std::runtime_error(std::string(ds_status_string(status)) + ": " + message),
          status_(status), message_(message) {}
    ds_status status() const noexcept { return status_; }
    const std::string &message() const noexcept { return message_; }

private:
    ds_status status_;
    std::string message_;
};

/// Throw Error for a negative status (read ds_last_error() right away, on this thread).
inline ds_status check(ds_status st, const char *handle_message = nullptr) {
    if (st >= 0)
        return st;
    std::string msg = ds_last_error();
    if (msg.empty() && handle_message)
        msg = handle_message;
    throw Error(st, msg);
}

namespace detail {
struct ModelClose { void operator()(ds_model *m) const noexcept { ds_model_close(m); } };
struct TokenizerClose { void operator()(ds_tokenizer *t) const noexcept { ds_tokenizer_close(t); } };
struct SessionClose { void operator()(ds_session *s) const noexcept { ds_session_close(s); } };
} // namespace detail

using ModelPtr = std::unique_ptr<ds_model, detail::ModelClose>;
using TokenizerPtr = std::unique_ptr<ds_tokenizer, detail::TokenizerClose>;
using SessionPtr = std::unique_ptr<ds_session, detail::SessionClose>;

/// A tokenizer: owned (opened from a file) or borrowed from a model (valid while it is open).
class Tokenizer {
public:
    explicit Tokenizer(const std::string &path) {
        ds_tokenizer *t = nullptr;
        check(ds_tokenizer_open(&t, path.c_str()));
        owned_.reset(t);
        tok_ = t;
    }
    explicit Tokenizer(const ds_tokenizer *borrowed) : tok_(borrowed) {}

    const ds_tokenizer *get() const noexcept { return tok_; }

    std::vector<int32_t> encode(std::string_view text, uint32_t flags = 0) const {
        size_t n = 0;
        ds_status st = ds_tokenize(tok_, text.data(), text.size(), flags, nullptr, 0, &n);
        if (st != DS_ERR_BUFFER_TOO_SMALL)
            check(st);
        std::vector<int32_t> ids(n);
        check(ds_tokenize(tok_, text.data(), text.size(), flags, ids.data(), ids.size(), &n));
        ids.resize(n);
        return ids;
    }

    std::string decode(const std::vector<int32_t> &ids, uint32_t flags = 0) const {
        size_t n = 0;
        ds_status st = ds_detokenize(tok_, ids.data(), ids.size(), flags, nullptr, 0, &n);
        if (st != DS_ERR_BUFFER_TOO_SMALL)
            check(st);
        std::string out(n + 1, '\0');
        check(ds_detokenize(tok_, ids.data(), ids.size(), flags, out.data(), out.size(), &n));
        out.resize(n);
        return out;
    }

    int32_t bos() const noexcept { return ds_tokenizer_bos(tok_); }
    int32_t eos() const noexcept { return ds_tokenizer_eos(tok_); }
    int32_t n_vocab() const noexcept { return ds_tokenizer_n_vocab(tok_); }
    bool is_eog(int32_t id) const noexcept { return ds_tokenizer_is_eog(tok_, id) != 0; }

    /// The template family of the stored chat template (throws if unknown or absent).
    ds_chat_template detect_template() const {
        ds_chat_template t = DS_CHAT_TEMPLATE_AUTO;
        check(ds_chat_detect(tok_, &t));
        return t;
    }

private:
    TokenizerPtr owned_;
    const ds_tokenizer *tok_ = nullptr;
};

/// One chat message (role "system", "user" or "assistant").
struct Message {
    std::string role, content;
};

/// The prompt ids of a conversation rendered with a chat template (ds_chat_format_tokens).
inline std::vector<int32_t> chat_tokens(const Tokenizer &tok, const std::vector<Message> &msgs,
                                        ds_chat_template tmpl = DS_CHAT_TEMPLATE_AUTO,
                                        bool add_assistant_prompt = true) {
    std::vector<ds_chat_message> c;
    c.reserve(msgs.size());
    for (const auto &m : msgs)
        c.push_back({m.role.c_str(), m.content.c_str()});
    size_t n = 0;
    ds_status st = ds_chat_format_tokens(tok.get(), tmpl, c.data(), c.size(), add_assistant_prompt,
                                         0, nullptr, 0, &n);
    if (st != DS_ERR_BUFFER_TOO_SMALL)
        check(st);
    std::vector<int32_t> ids(n);
    check(ds_chat_format_tokens(tok.get(), tmpl, c.data(), c.size(), add_assistant_prompt, 0,
                                ids.data(), ids.size(), &n));
    ids.resize(n);
    return ids;
}

/// An open model file.
class Model {
public:
    explicit Model(const std::string &path, int n_threads = 0) {
        ds_model_params p;
        check(ds_model_default_params(&p, sizeof p));
        p.n_threads = n_threads;
        ds_model *m = nullptr;
        check(ds_model_open(&m, path.c_str(), &p));
        model_.reset(m);
    }
    ds_model *get() const noexcept { return model_.get(); }

    /// The model's tokenizer (borrowed: valid while the model is open).
    Tokenizer tokenizer() const {
        const ds_tokenizer *t = ds_model_tokenizer(model_.get());
        if (!t)
            throw Error(DS_ERR_UNSUPPORTED, "the model has no tokenizer");
        return Tokenizer(t);
    }

    ds_model_info info() const {
        ds_model_info i{};
        i.struct_size = sizeof i;
        check(ds_model_info_get(model_.get(), &i), ds_model_errmsg(model_.get()));
        return i;
    }

private:
    ModelPtr model_;
};

/// One piece of generated text.
struct Piece {
    ds_text_kind kind;
    std::string text;
};

/// A session: one sequence on a model. The model must outlive it.
class Session {
public:
    /// `configure` may change the default parameters before the session opens.
    template <class Configure>
    Session(const Model &model, Configure &&configure) {
        ds_session_params p;
        check(ds_session_default_params(&p, sizeof p));
        configure(p);
        open(model, p);
    }
    explicit Session(const Model &model) {
        ds_session_params p;
        check(ds_session_default_params(&p, sizeof p));
        open(model, p);
    }
    ds_session *get() const noexcept { return s_.get(); }

    void feed(const std::vector<int32_t> &ids) { chk(ds_session_feed(s_.get(), ids.data(), ids.size())); }
    void feed_text(std::string_view text, uint32_t flags = 0) {
        chk(ds_session_feed_text(s_.get(), text.data(), text.size(), flags));
    }

    /// One step; false once the generation has stopped (stop_reason() says why).
    bool step(int32_t *token = nullptr) {
        int32_t t = -1;
        ds_status st = chk(ds_session_step(s_.get(), &t));
        if (token)
            *token = t;
        return st == DS_OK;
    }

    /// The text pieces of the last step.
    std::vector<Piece> text() {
        std::vector<Piece> out;
        ds_text_kind kind;
        const char *p;
        size_t len;
        while (ds_session_text(s_.get(), &kind, &p, &len) == DS_OK)
            out.push_back({kind, std::string(p, len)});
        return out;
    }

    std::vector<int32_t> tokens() const {
        const int32_t *t = nullptr;
        size_t n = 0;
        check(ds_session_tokens(s_.get(), &t, &n));
        return std::vector<int32_t>(t, t + n);
    }

    /// Hold exactly `ids`, keeping the common prefix with the current tokens (a chat turn
    /// then runs only its new tokens). The last token always runs again.
    void sync(const std::vector<int32_t> &ids) {
        std::vector<int32_t> have = tokens();
        size_t k = 0;
        while (k < have.size() && k < ids.size() && have[k] == ids[k])
            k++;
        if (k == ids.size() && k > 0)
            k--;
        chk(ds_session_rewind(s_.get(), have.size() - k));
        feed(std::vector<int32_t>(ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end()));
    }

    void rewind(size_t n) { chk(ds_session_rewind(s_.get(), n)); }
    void reset() { chk(ds_session_reset(s_.get())); }
    void cancel() noexcept { ds_session_cancel(s_.get()); } // any thread
    void save(const std::string &path) { chk(ds_session_save(s_.get(), path.c_str())); }
    void load(const std::string &path) { chk(ds_session_load(s_.get(), path.c_str())); }

    size_t n_tokens() const noexcept { return ds_session_n_tokens(s_.get()); }
    uint32_t n_ctx() const noexcept { return ds_session_n_ctx(s_.get()); }
    ds_stop_reason stop_reason() const noexcept { return ds_session_stop_reason(s_.get()); }

private:
    void open(const Model &model, const ds_session_params &p) {
        ds_session *s = nullptr;
        check(ds_session_open(&s, model.get(), &p));
        s_.reset(s);
    }
    ds_status chk(ds_status st) const { return check(st, ds_session_errmsg(s_.get())); }

    SessionPtr s_;
};

} // namespace deepseek

#endif // DEEPSEEK_EXAMPLE_HPP
