package dev.cellar.cells;

import dev.cellar.api.CellarException;
import dev.cellar.api.Init;
import dev.cellar.api.Ops;
import dev.cellar.api.Param;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Cell;
import dev.cellar.api.spi.CellConfig;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.api.spi.CellSpec;
import dev.cellar.api.spi.HyperParameter;
import dev.cellar.api.spi.ParamInit;
import dev.cellar.api.spi.State;
import dev.cellar.api.spi.Step;

import java.util.ArrayList;
import java.util.List;

/**
 * One pre-LayerNorm transformer block per layer (GPT-2 style), like PyTorch's
 * {@code TransformerEncoderLayer(norm_first=True, activation="gelu")} with a causal mask:
 * <pre>
 * x = x + pos[0:T]                      (bottom layer only: learned positions)
 * x = x + W_o attn(LN1(x))              causal multi-head self-attention
 * x = x + W_2 gelu(W_1 LN2(x))
 * x = LN_f(x)                           (top layer only)
 * </pre>
 * Training runs {@code sequence} over a whole window (positions restart at 0 each window, nothing is carried
 * between windows). Generation steps one token at a time with a KV cache as the state: {@code (K, V, X)} where K and
 * V are (B, t, D), the heads side by side as the projection gives them, and X (B, t, I) holds this layer's inputs; the position counter is the cache length t
 * ({@code initialState} is an empty cache, t = 0). Before the cache would exceed {@code context} (its
 * {@link #context()}), a language model re-encodes its newest {@code context/2} tokens through the whole stack from
 * position 0. A layer stepped on its own past its context re-encodes its own last {@code context/2} inputs instead;
 * in a stack that would leave the upper layers attending to features computed at the old positions.
 */
public final class Transformer implements CellProvider {
    static final double EPS = 1e-5;

    @Override
    public String id() {
        return "transformer";
    }

    @Override
    public CellSpec spec() {
        return new CellSpec("pre-LayerNorm transformer block: causal multi-head attention, learned positions, GELU MLP",
                List.of(), 3, List.of(
                new HyperParameter("heads", "4", "attention heads; must divide the hidden size"),
                new HyperParameter("ff", "4*hidden", "width of the feed-forward layer"),
                new HyperParameter("context", "100", "longest window; size of the learned position table")), "1");
    }

    @Override
    public Cell create(CellConfig c, ParamInit init) {
        return new Block(c, init);
    }

    static final class Block implements Cell {
        final int d, heads, ff, context, in;
        final boolean bottom, top;
        final Param inW, inB, pos, ln1w, ln1b, qkvW, qkvB, outW, outB, ln2w, ln2b, upW, upB, downW, downB, lnfW, lnfB;
        final List<Param> params = new ArrayList<>();
        final CausalSelfAttention attention;

        Block(CellConfig c, ParamInit init) {
            d = c.hiddenSize();
            in = c.inputSize();
            heads = c.intOption("heads", 4);
            if (heads <= 0 || d % heads != 0) {
                throw new CellarException("hidden " + d + " not divisible by heads " + heads
                        + "; choose --hidden as a multiple of heads or set heads");
            }
            attention = new CausalSelfAttention(heads);
            ff = c.intOption("ff", 4 * d);
            context = c.intOption("context", 100);
            if (ff <= 0 || context <= 1) {
                throw new CellarException("transformer ff " + ff + " and context " + context + " must be positive (context > 1)");
            }
            bottom = c.layerIndex() == 0;
            top = c.layerIndex() == c.layers() - 1;
            Init w = Init.normal(0.02);
            inW = in != d ? add(init.param("input.weight", Shape.of(d, in), Init.uniform(1 / Math.sqrt(in)))) : null;
            inB = in != d ? add(init.param("input.bias", Shape.of(d), Init.zeros())) : null;
            pos = bottom ? add(init.param("pos", Shape.of(context, d), w)) : null;
            ln1w = add(init.param("ln1.weight", Shape.of(d), Init.ones()));
            ln1b = add(init.param("ln1.bias", Shape.of(d), Init.zeros()));
            qkvW = add(init.param("attn.qkv.weight", Shape.of(3 * d, d), w));
            qkvB = add(init.param("attn.qkv.bias", Shape.of(3 * d), Init.zeros()));
            outW = add(init.param("attn.out.weight", Shape.of(d, d), w));
            outB = add(init.param("attn.out.bias", Shape.of(d), Init.zeros()));
            ln2w = add(init.param("ln2.weight", Shape.of(d), Init.ones()));
            ln2b = add(init.param("ln2.bias", Shape.of(d), Init.zeros()));
            upW = add(init.param("ff.up.weight", Shape.of(ff, d), w));
            upB = add(init.param("ff.up.bias", Shape.of(ff), Init.zeros()));
            downW = add(init.param("ff.down.weight", Shape.of(d, ff), w));
            downB = add(init.param("ff.down.bias", Shape.of(d), Init.zeros()));
            lnfW = top ? add(init.param("lnf.weight", Shape.of(d), Init.ones())) : null;
            lnfB = top ? add(init.param("lnf.bias", Shape.of(d), Init.zeros())) : null;
        }

        private Param add(Param p) {
            params.add(p);
            return p;
        }

        @Override
        public List<Param> params() {
            return List.copyOf(params);
        }

        @Override
        public int outputSize() {
            return d;
        }

        @Override
        public State initialState(Ops ops, int batch) {
            return State.of(ops.zeros(Shape.of(batch, 0, d)), ops.zeros(Shape.of(batch, 0, d)), ops.zeros(Shape.of(batch, 0, in)));
        }

        /**
         * Runs the block on xs (B, T, I) whose first position is {@code start}, attending also to cached keys/values
         * (B, start, D). Returns the output (B, T, D) and the grown cache.
         */
        private Step run(Ops ops, Tensor xs, Tensor kCache, Tensor vCache, Tensor xCache) {
            int t = xs.dim(1), start = kCache.dim(1);
            Tensor x = inW != null ? ops.linear(xs, inW, inB) : xs;                       // (B, T, D)
            if (pos != null) {
                x = ops.add(x, ops.slice(pos, 0, start, start + t));                         // + (T, D)
            }
            List<Tensor> qkv = ops.split(ops.linear(ops.layerNorm(x, ln1w, ln1b, EPS), qkvW, qkvB), 2, d, d, d);
            Tensor k = start == 0 ? qkv.get(1) : ops.concat(1, kCache, qkv.get(1));       // (B, S, D), S = start + T
            Tensor v = start == 0 ? qkv.get(2) : ops.concat(1, vCache, qkv.get(2));
            Tensor y = ops.custom(attention, qkv.get(0), k, v).get(0);                       // (B, T, D)
            x = ops.add(x, ops.linear(y, outW, outB));
            Tensor hid = ops.gelu(ops.linear(ops.layerNorm(x, ln2w, ln2b, EPS), upW, upB)); // (B, T, ff)
            x = ops.add(x, ops.linear(hid, downW, downB));
            if (lnfW != null) {
                x = ops.layerNorm(x, lnfW, lnfB, EPS);
            }
            return new Step(x, State.of(k, v, ops.concat(1, xCache, xs)));
        }

        @Override
        public int context() {
            return context;
        }

        @Override
        public Step sequence(Ops ops, Tensor xs, State state) {
            if (xs.dim(1) > context) {
                throw new CellarException("window " + xs.dim(1) + " is longer than the transformer context " + context
                        + "; use --seq " + context + " or a larger context option");
            }
            State empty = initialState(ops, xs.dim(0));
            return run(ops, xs, empty.get(0), empty.get(1), empty.get(2));
        }

        @Override
        public Step step(Ops ops, Tensor x, State state) {
            int b = x.dim(0);
            Tensor x3 = ops.reshape(x, b, 1, x.dim(1));                                     // (B, 1, I)
            Tensor k = state.get(0), v = state.get(1), xc = state.get(2);
            if (k.dim(1) >= context) { // slide: re-encode the newest context/2 inputs from position 0
                int keep = context / 2;
                Tensor recent = ops.slice(xc, 1, xc.dim(1) - keep, xc.dim(1));
                State fresh = sequence(ops, recent, state).next();
                k = fresh.get(0);
                v = fresh.get(1);
                xc = fresh.get(2);
            }
            Step st = run(ops, x3, k, v, xc);
            return new Step(ops.reshape(st.out(), b, d), st.next());                         // (B, D)
        }
    }
}
