package dev.cellar.cells;

import dev.cellar.cells.kit.CellChecks;
import dev.cellar.autodiff.testkit.GradCheck;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** The contract's gradchecks cover every parameter, input and state element (not a vacuous pass). */
class GradCheckCoverageTest {
    @Test
    void lstmStepChecksParamsInputAndBothStateTensors() {
        // params 4H*I + 4H*H + 4H + 4H = 24 + 36 + 12 + 12 = 84; input B*I = 4; state h and c: 2 * B*H = 12
        GradCheck.Report r = CellChecks.gradcheckStep(new Lstm(), 2, 2, 3, CellChecks.tinyOptions(), 5);
        assertTrue(r.passed(), r.summary());
        assertTrue(r.summary().contains("(100 elements"), r.summary());
    }

    @Test
    void transformerWindowChecksEveryParam() {
        GradCheck.Report r = CellChecks.gradcheckSequence(new Transformer(), 1, 3, 2, 2, CellChecks.tinyOptions(), 5);
        assertTrue(r.passed(), r.summary());
        assertTrue(r.summary().contains("(90 elements"), r.summary()); // 84 params + 6 inputs
    }
}
