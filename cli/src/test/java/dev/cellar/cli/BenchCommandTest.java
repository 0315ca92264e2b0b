package dev.cellar.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** What {@code cellar bench} reports and how it rejects bad flags; the figures themselves are not asserted. */
class BenchCommandTest {
    @Test
    void gemmReportsEverySizeAsJson() throws Exception {
        Cli.Result r = Cli.run("bench", "--gemm", "--backend", "cpu-reference", "--reps", "1", "--sizes", "8x4x3,5x7x2:tn,3x3x9:nt", "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode o = new ObjectMapper().readTree(r.out());
        assertEquals("cpu-reference", o.get("backend").asText());
        assertEquals(3, o.get("results").size());
        JsonNode tn = o.get("results").get(1);
        assertEquals("5x7x2:tn", tn.get("size").asText());
        assertEquals(5, tn.get("m").asInt());
        assertTrue(tn.get("trans_a").asBoolean() && !tn.get("trans_b").asBoolean());
        assertTrue(tn.get("gflops_median").asDouble() > 0, r.out());
    }

    @Test
    void aModelBenchReportsTokensPerSecondAndSampling() throws Exception {
        Cli.Result r = Cli.run("bench", "--cell", "gru", "--hidden", "8", "--layers", "1", "--batch", "2", "--seq", "4", "--steps", "2",
                "--warmup", "0", "--sample", "5", "--sample-reps", "3", "--backend", "cpu-reference", "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode o = new ObjectMapper().readTree(r.out());
        assertEquals("gru", o.get("cell").asText());
        assertTrue(o.get("train_tok_s").asDouble() > 0 && o.get("sample_ms_per_token").asDouble() > 0, r.out());
        double[] reps = new double[3];
        for (int i = 0; i < 3; i++) {
            reps[i] = o.get("sample_ms_per_token_reps").get(i).asDouble();
        }
        assertEquals(3, o.get("sample_ms_per_token_reps").size());
        java.util.Arrays.sort(reps);
        assertEquals(reps[1], o.get("sample_ms_per_token").asDouble(), 0.0, "ms/token is the median repetition");
        Cli.assertUsage(Cli.run("bench", "--cell", "gru", "--sample-reps", "0"), "--sample-reps");
    }

    /**
     * Steps after the first replay its kernel calls on the cpu backend; not with --no-graph, nor on cpu-reference,
     * whose unfused cross-entropy turns the targets into indices on the host.
     */
    @Test
    void stepsReplayUnlessToldNotToOrTheyCannot() throws Exception {
        for (String[] c : new String[][]{{"cpu", "--graph", "true"}, {"cpu", "--no-graph", "false"},
                {"cpu-reference", "--graph", "false"}}) {
            Cli.Result r = Cli.run("bench", "--cell", "lstm", "--hidden", "8", "--layers", "1", "--batch", "16", "--seq", "4",
                    "--steps", "2", "--warmup", "1", "--sample", "0", "--backend", c[0], c[1], "--json");
            assertEquals(0, r.code(), r.err());
            JsonNode o = new ObjectMapper().readTree(r.out());
            assertEquals(Boolean.parseBoolean(c[2]), o.get("graph_replay").asBoolean(), c[0] + " " + c[1] + ": " + r.out());
        }
    }

    @Test
    void badSizesAreUsageErrors() {
        Cli.assertUsage(Cli.run("bench", "--gemm", "--sizes", "64x256"), "--sizes 64x256", "MxKxN");
        Cli.assertUsage(Cli.run("bench", "--gemm", "--sizes", "0x2x2"), "--sizes 0x2x2", "positive");
        Cli.assertUsage(Cli.run("bench", "--gemm", "--sizes", "2x2x2:xx"), ":tn");
        Cli.assertUsage(Cli.run("bench", "--gemm", "--reps", "0"), "--reps");
        // more tokens a step than an int array holds: a usage error before anything is allocated, not an OutOfMemoryError
        Cli.assertUsage(Cli.run("bench", "--batch", "100000", "--seq", "100000"), "--batch 100000 x --seq 100000", "tokens a step");
    }
}
