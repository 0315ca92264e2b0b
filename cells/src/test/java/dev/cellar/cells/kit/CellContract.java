package dev.cellar.cells.kit;

import dev.cellar.api.spi.CellProvider;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import java.util.Map;

/**
 * The cell contract for plugin authors: extend it, return your provider, and your cell is checked like the built-in
 * ones (shapes, state threading, determinism, step = sequence, save/load, GradCheck of params, input and state over
 * generated sizes). Depend on {@code cellar-cells:test-jar}, {@code cellar-autodiff} and {@code cellar-kernels-cpu}
 * in test scope.
 * <pre>{@code
 * class MyCellContractTest extends CellContract {
 *     protected CellProvider provider() { return new MyCellProvider(); }
 * }
 * }</pre>
 */
public abstract class CellContract {
    protected abstract CellProvider provider();

    /** Options for tiny test sizes; override when your cell needs some. */
    protected Map<String, String> options() {
        return CellChecks.tinyOptions();
    }

    @Test
    void shapesAndStateArity() {
        CellChecks.shapesAndArity(provider(), 2, 3, 3, 4, options());
    }

    @Test
    void stateIsThreaded() {
        CellChecks.stateIsThreaded(provider(), 2, 3, 4, options());
    }

    @Test
    void deterministicUnderSeed() {
        CellChecks.deterministicUnderSeed(provider(), 2, 3, 3, 4, options());
    }

    @Test
    void stepEqualsSequence() {
        CellChecks.stepEqualsSequence(provider(), 2, 4, 3, 4, options());
    }

    @Test
    void paramsRoundTrip() {
        CellChecks.paramsRoundTrip(provider(), 2, 3, 4, options());
    }

    @Property(seed = "1", tries = 10)
    void gradcheckSequence(@ForAll @IntRange(min = 1, max = 3) int b, @ForAll @IntRange(min = 1, max = 3) int t,
                           @ForAll @IntRange(min = 1, max = 4) int in, @ForAll @IntRange(min = 1, max = 4) int h, @ForAll long seed) {
        CellChecks.assertPasses(CellChecks.gradcheckSequence(provider(), b, t, in, h, options(), seed), provider().id());
    }

    @Property(seed = "1", tries = 10)
    void gradcheckStep(@ForAll @IntRange(min = 1, max = 3) int b, @ForAll @IntRange(min = 1, max = 4) int in,
                       @ForAll @IntRange(min = 1, max = 4) int h, @ForAll long seed) {
        CellChecks.assertPasses(CellChecks.gradcheckStep(provider(), b, in, h, options(), seed), provider().id());
    }
}
