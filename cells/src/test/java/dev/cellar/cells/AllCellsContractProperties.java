package dev.cellar.cells;

import dev.cellar.api.spi.CellProvider;
import dev.cellar.cells.kit.CellChecks;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.ServiceLoader;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Every CellProvider on the test class path passes the cell contract. */
class AllCellsContractProperties {
    static List<CellProvider> providers() {
        return ServiceLoader.load(CellProvider.class).stream().map(ServiceLoader.Provider::get).toList();
    }

    @Test
    void allSixBuiltInsAreDiscovered() {
        assertEquals(List.of("rnn", "lstm", "gru", "transformer", "layernorm-lstm", "mingru"),
                providers().stream().map(CellProvider::id).toList());
    }

    @Test
    void deterministicChecksForEveryCell() {
        for (CellProvider p : providers()) {
            CellChecks.shapesAndArity(p, 2, 3, 3, 4, CellChecks.tinyOptions());
            CellChecks.stateIsThreaded(p, 2, 3, 4, CellChecks.tinyOptions());
            CellChecks.deterministicUnderSeed(p, 2, 3, 3, 4, CellChecks.tinyOptions());
            CellChecks.stepEqualsSequence(p, 2, 4, 3, 4, CellChecks.tinyOptions());
            CellChecks.paramsRoundTrip(p, 2, 3, 4, CellChecks.tinyOptions());
        }
    }

    /** Each try checks every provider, so every cell gets all 12 generated size combinations. */
    @Property(seed = "1", tries = 12)
    void gradcheckSequence(@ForAll @IntRange(min = 1, max = 3) int b, @ForAll @IntRange(min = 1, max = 3) int t,
                           @ForAll @IntRange(min = 1, max = 4) int in, @ForAll @IntRange(min = 1, max = 4) int h,
                           @ForAll long seed) {
        for (CellProvider p : providers()) {
            CellChecks.assertPasses(CellChecks.gradcheckSequence(p, b, t, in, h, CellChecks.tinyOptions(), seed), p.id());
        }
    }

    @Property(seed = "1", tries = 12)
    void gradcheckStepWithState(@ForAll @IntRange(min = 1, max = 3) int b, @ForAll @IntRange(min = 1, max = 4) int in,
                                @ForAll @IntRange(min = 1, max = 4) int h, @ForAll long seed) {
        for (CellProvider p : providers()) {
            CellChecks.assertPasses(CellChecks.gradcheckStep(p, b, in, h, CellChecks.tinyOptions(), seed), p.id());
        }
    }
}
