// oneDNN's vanilla RNN primitive as the layer comparison's peer: one layer, unidirectional left
// to right, tanh, float32, forward_training then backward, behind a small C interface that
// bench/peers/onednn_rnn.py loads with ctypes. It is compiled there, on first use, against the
// headers and libdnnl of the pip packages onednn-devel-cpu-gomp and onednn-cpu-gomp.
//
// The caller's arrays are used in place (no copy in a call): the data in oneDNN's plain layouts,
// which are bptt's too (inputs tnc = (T, B, D), states ldnc = (1, 1, B, H)), the weights in
// ldgoi = (H, D) and (H, H) row-major, bptt's and torch's layout. Each primitive gets the weights
// in the layout it prefers (format_tag::any), reordered once when the peer is made, as a
// framework keeps them; the weight gradients come back in ldgoi, reordered in the call when the
// primitive computes them in another layout.

#include <omp.h>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using Arguments = std::unordered_map<int, memory>;

constexpr auto f32 = memory::data_type::f32;

struct Peer {
    dnnl::engine engine{dnnl::engine::kind::cpu, 0};
    dnnl::stream stream{engine};
    dnnl::vanilla_rnn_forward forward;
    dnnl::vanilla_rnn_backward backward;
    Arguments forward_arguments, backward_arguments;
    // Weight gradients computed in a layout other than ldgoi: (primitive's, caller's) pairs.
    struct Copy {
        dnnl::reorder reorder;
        memory from, to;
    };
    std::vector<Copy> gradient_copies;
    std::string implementation;
};

memory::desc plain(memory::dims dims, tag layout) { return {dims, f32, layout}; }

memory::desc any(memory::dims dims) { return {dims, f32, tag::any}; }

memory wrap(const memory::desc& desc, const dnnl::engine& engine, const float* data) {
    return {desc, engine, const_cast<float*>(data)};  // read-only arguments: never written
}

// The caller's array in `want`'s layout: itself, or a copy reordered once.
memory in_layout(memory user, const memory::desc& want, Peer& peer) {
    if (user.get_desc() == want) return user;
    memory laid_out(want, peer.engine);
    dnnl::reorder(user, laid_out).execute(peer.stream, user, laid_out);
    peer.stream.wait();
    return laid_out;
}

// Where the primitive writes a gradient that the caller wants in `user`: `user` itself, or a
// buffer of the primitive's layout copied into `user` after each backward.
memory gradient_target(const memory& user, const memory::desc& computed, Peer& peer) {
    if (user.get_desc() == computed) return user;
    memory buffer(computed, peer.engine);
    peer.gradient_copies.push_back({dnnl::reorder(buffer, user), buffer, user});
    return buffer;
}

void copy_message(const char* text, char* error, size_t error_size) {
    std::snprintf(error, error_size, "%s", text);
}

}  // namespace

extern "C" {

// "major.minor.patch (hash)" of the libdnnl loaded.
const char* onednn_rnn_version() {
    static std::string text;
    const dnnl_version_t* v = dnnl_version();
    text = std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
           std::to_string(v->patch) + " (" + (v->hash ? v->hash : "") + ")";
    return text.c_str();
}

// oneDNN's CPU runtime here is GNU OpenMP: its parallel regions take the OpenMP thread count.
void onednn_rnn_set_threads(int threads) { omp_set_num_threads(threads); }

int onednn_rnn_get_threads() { return omp_get_max_threads(); }

// A peer on (T, B, D, H) over the caller's arrays, which must outlive it; nullptr and a message
// in `error` when oneDNN refuses.
void* onednn_rnn_create(long T, long B, long D, long H, const float* U, const float* W,
                        const float* b, const float* inputs, const float* h0,
                        const float* d_hidden, const float* d_h_last, float* hidden,
                        float* h_last, float* dU, float* dW, float* db, float* dx, float* dh0,
                        char* error, size_t error_size) {
    try {
        auto* peer = new Peer();
        const dnnl::engine& engine = peer->engine;
        // Logical dimensions: data (T, B, C) as tnc, states (L, dirs, B, H) as ldnc, weights
        // (L, dirs, in, gates, H), bias (L, dirs, gates, H).
        const memory::dims inputs_dims{T, B, D}, hidden_dims{T, B, H}, state_dims{1, 1, B, H};
        const memory::dims U_dims{1, 1, D, 1, H}, W_dims{1, 1, H, 1, H}, b_dims{1, 1, 1, H};
        const auto inputs_md = plain(inputs_dims, tag::tnc), hidden_md = plain(hidden_dims, tag::tnc);
        const auto state_md = plain(state_dims, tag::ldnc), bias_md = plain(b_dims, tag::ldgo);
        const auto U_md = plain(U_dims, tag::ldgoi), W_md = plain(W_dims, tag::ldgoi);

        const auto activation = dnnl::algorithm::eltwise_tanh;
        const auto direction = dnnl::rnn_direction::unidirectional_left2right;
        dnnl::vanilla_rnn_forward::primitive_desc forward_pd(
            engine, dnnl::prop_kind::forward_training, activation, direction, inputs_md,
            state_md, any(U_dims), any(W_dims), bias_md, hidden_md, state_md);
        // The C interface, for the flag the C++ one lacks: gradients overwrite, not accumulate.
        dnnl_primitive_desc_t backward_c_pd = nullptr;
        const auto any_U = any(U_dims), any_W = any(W_dims);
        dnnl::error::wrap_c_api(
            dnnl_vanilla_rnn_backward_primitive_desc_create(
                &backward_c_pd, engine.get(), dnnl_backward, dnnl_eltwise_tanh,
                dnnl_unidirectional_left2right, inputs_md.get(), state_md.get(), any_U.get(),
                any_W.get(), bias_md.get(), hidden_md.get(), state_md.get(), inputs_md.get(),
                state_md.get(), any_U.get(), any_W.get(), bias_md.get(), hidden_md.get(),
                state_md.get(), dnnl_rnn_flags_diff_weights_overwrite, 0.0f, 0.0f,
                forward_pd.get(), nullptr),
            "could not create the vanilla RNN backward primitive descriptor");
        dnnl::vanilla_rnn_backward::primitive_desc backward_pd(backward_c_pd);
        peer->forward = dnnl::vanilla_rnn_forward(forward_pd);
        peer->backward = dnnl::vanilla_rnn_backward(backward_pd);
        peer->implementation =
            std::string(forward_pd.impl_info_str()) + " / " + backward_pd.impl_info_str();

        const memory user_U = wrap(U_md, engine, U), user_W = wrap(W_md, engine, W);
        const memory src_layer = wrap(inputs_md, engine, inputs);
        const memory src_iter = wrap(state_md, engine, h0);
        const memory bias = wrap(bias_md, engine, b);
        const memory dst_layer = wrap(hidden_md, engine, hidden);
        const memory dst_iter = wrap(state_md, engine, h_last);
        const memory workspace(forward_pd.workspace_desc(), engine);
        peer->forward_arguments = {
            {DNNL_ARG_SRC_LAYER, src_layer},
            {DNNL_ARG_SRC_ITER, src_iter},
            {DNNL_ARG_WEIGHTS_LAYER, in_layout(user_U, forward_pd.weights_layer_desc(), *peer)},
            {DNNL_ARG_WEIGHTS_ITER, in_layout(user_W, forward_pd.weights_iter_desc(), *peer)},
            {DNNL_ARG_BIAS, bias},
            {DNNL_ARG_DST_LAYER, dst_layer},
            {DNNL_ARG_DST_ITER, dst_iter},
            {DNNL_ARG_WORKSPACE, workspace},
        };
        peer->backward_arguments = {
            {DNNL_ARG_SRC_LAYER, src_layer},
            {DNNL_ARG_SRC_ITER, src_iter},
            {DNNL_ARG_WEIGHTS_LAYER, in_layout(user_U, backward_pd.weights_layer_desc(), *peer)},
            {DNNL_ARG_WEIGHTS_ITER, in_layout(user_W, backward_pd.weights_iter_desc(), *peer)},
            {DNNL_ARG_BIAS, bias},
            {DNNL_ARG_DST_LAYER, dst_layer},
            {DNNL_ARG_DST_ITER, dst_iter},
            {DNNL_ARG_WORKSPACE, workspace},
            {DNNL_ARG_DIFF_DST_LAYER, wrap(hidden_md, engine, d_hidden)},
            {DNNL_ARG_DIFF_DST_ITER, wrap(state_md, engine, d_h_last)},
            {DNNL_ARG_DIFF_SRC_LAYER, wrap(inputs_md, engine, dx)},
            {DNNL_ARG_DIFF_SRC_ITER, wrap(state_md, engine, dh0)},
            {DNNL_ARG_DIFF_WEIGHTS_LAYER,
             gradient_target(wrap(U_md, engine, dU), backward_pd.diff_weights_layer_desc(),
                             *peer)},
            {DNNL_ARG_DIFF_WEIGHTS_ITER,
             gradient_target(wrap(W_md, engine, dW), backward_pd.diff_weights_iter_desc(),
                             *peer)},
            {DNNL_ARG_DIFF_BIAS, wrap(bias_md, engine, db)},
        };
        return peer;
    } catch (const std::exception& e) {
        copy_message(e.what(), error, error_size);
    }
    return nullptr;
}

// One forward_training and one backward, blocking until done; 0, or 1 and a message.
int onednn_rnn_run(void* handle, char* error, size_t error_size) {
    try {
        auto* peer = static_cast<Peer*>(handle);
        peer->forward.execute(peer->stream, peer->forward_arguments);
        peer->backward.execute(peer->stream, peer->backward_arguments);
        for (auto& copy : peer->gradient_copies)
            copy.reorder.execute(peer->stream, copy.from, copy.to);
        peer->stream.wait();
        return 0;
    } catch (const std::exception& e) {
        copy_message(e.what(), error, error_size);
    }
    return 1;
}

// The implementations oneDNN chose, forward / backward (e.g. "ref:any").
const char* onednn_rnn_implementation(void* handle) {
    return static_cast<Peer*>(handle)->implementation.c_str();
}

void onednn_rnn_destroy(void* handle) { delete static_cast<Peer*>(handle); }

}  // extern "C"
