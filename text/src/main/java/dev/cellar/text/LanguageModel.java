package dev.cellar.text;

import dev.cellar.api.Init;
import dev.cellar.api.Ops;
import dev.cellar.api.Param;
import dev.cellar.api.Shape;
import dev.cellar.api.Tensor;
import dev.cellar.api.spi.Cell;
import dev.cellar.api.spi.CellConfig;
import dev.cellar.api.spi.CellProvider;
import dev.cellar.api.spi.ParamInit;
import dev.cellar.api.spi.State;
import dev.cellar.api.spi.Step;

import java.util.ArrayList;
import java.util.List;

/**
 * embedding (V, H) -> L cell layers -> projection (V, H) + bias, as in the reference experiment. Param names:
 * {@code embed.weight}, {@code layers.<i>.<cell param>}, {@code head.weight}, {@code head.bias}.
 */
public final class LanguageModel {
    private final ModelConfig config;
    private final Tokenizer tokenizer;
    private final CellProvider provider;
    private final Param embed;
    private final List<Cell> layers = new ArrayList<>();
    private final Param headW;
    private final Param headB;

    public LanguageModel(ModelConfig config, Tokenizer tokenizer, CellProvider provider, ParamInit init) {
        this.config = config;
        this.tokenizer = tokenizer;
        this.provider = provider;
        int v = tokenizer.vocabSize(), h = config.hidden();
        embed = init.param("embed.weight", Shape.of(v, h), Init.normal(1.0)); // PyTorch nn.Embedding: N(0, 1)
        for (int i = 0; i < config.layers(); i++) {
            String prefix = "layers." + i + ".";
            layers.add(provider.create(new CellConfig(i == 0 ? h : layers.get(i - 1).outputSize(), h, i, config.layers(),
                    config.cellOptions()), (name, shape, in) -> init.param(prefix + name, shape, in)));
        }
        int out = layers.get(layers.size() - 1).outputSize();
        double bound = 1 / Math.sqrt(out);
        headW = init.param("head.weight", Shape.of(v, out), Init.uniform(bound));
        headB = init.param("head.bias", Shape.of(v), Init.uniform(bound));
    }

    public ModelConfig config() {
        return config;
    }

    public Tokenizer tokenizer() {
        return tokenizer;
    }

    public CellProvider provider() {
        return provider;
    }

    /** All params in a stable order: embedding, layers bottom-up, head. */
    public List<Param> params() {
        List<Param> ps = new ArrayList<>();
        ps.add(embed);
        layers.forEach(c -> ps.addAll(c.params()));
        ps.add(headW);
        ps.add(headB);
        return ps;
    }

    public long parameterCount() {
        return params().stream().mapToLong(p -> p.shape().size()).sum();
    }

    /**
     * The shortest positive {@link Cell#context()} of the layers (the transformer's window), or 0 when no layer limits
     * how far it looks back: the state of {@link #step} may then hold at most this many tokens.
     */
    public int context() {
        int c = 0;
        for (Cell l : layers) {
            if (l.context() > 0) {
                c = c == 0 ? l.context() : Math.min(c, l.context());
            }
        }
        return c;
    }

    public List<State> initialState(Ops ops, int batch) {
        List<State> s = new ArrayList<>();
        for (Cell c : layers) {
            s.add(c.initialState(ops, batch));
        }
        return s;
    }

    /** Logits and the states after a window. */
    public record Output(Tensor logits, List<State> state) {
    }

    /** The top layer's features and the states after a window. */
    public record Features(Tensor out, List<State> state) {
    }

    /** ids (B, T) I32 -> logits (B, T, V). */
    public Output forward(Ops ops, Tensor ids, List<State> state) {
        Features top = encode(ops, embed(ops, ids), state);
        return new Output(head(ops, top.out()), top.state());
    }

    /** ids (B, T) I32 -> embedding vectors (B, T, H): the input of {@link #encode}. */
    public Tensor embed(Ops ops, Tensor ids) {
        return ops.embedding(embed, ids);                         // (B, T, H)
    }

    /**
     * Embedding vectors (B, T, H) -> the top layer's features (B, T, H') and the states after the window. With
     * {@link #embed} and {@link #head} this is {@link #forward}; the memory-span probe takes gradients with respect to
     * the embedding vectors through it.
     */
    public Features encode(Ops ops, Tensor x, List<State> state) {
        List<State> next = new ArrayList<>(layers.size());
        for (int i = 0; i < layers.size(); i++) {
            if (config.dropout() > 0) {
                x = ops.dropout(x, config.dropout());
            }
            Step st = layers.get(i).sequence(ops, x, state.get(i)); // (B, T, H')
            x = st.out();
            next.add(st.next());
        }
        if (config.dropout() > 0) {
            x = ops.dropout(x, config.dropout());
        }
        return new Features(x, next);
    }

    /** Top-layer features (..., H') -> logits (..., V). */
    public Tensor head(Ops ops, Tensor features) {
        return ops.linear(features, headW, headB);
    }

    /** One token per row: ids (B) I32 -> logits (B, V), reusing the cells' state (and KV caches). */
    public Output step(Ops ops, Tensor ids, List<State> state) {
        Tensor x = ops.embedding(embed, ids);                     // (B, H)
        List<State> next = new ArrayList<>(layers.size());
        for (int i = 0; i < layers.size(); i++) {
            Step st = layers.get(i).step(ops, x, state.get(i));
            x = st.out();
            next.add(st.next());
        }
        return new Output(ops.linear(x, headW, headB), next);     // (B, V)
    }
}
