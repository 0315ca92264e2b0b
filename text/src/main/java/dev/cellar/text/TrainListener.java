package dev.cellar.text;

import java.nio.file.Path;

/** What a training run reports as it goes; the CLI draws a progress bar from it. Every method has a no-op default. */
public interface TrainListener {
    /** totalSteps is the step count for the requested epochs (a time budget may stop earlier). */
    default void onStart(long totalSteps, int windowsPerEpoch, long params, long resumedStep) {
    }

    default void onStep(long step, int epoch, double loss, double tokensPerSecond) {
    }

    default void onEval(long step, Evaluator.Result validation) {
    }

    default void onCheckpoint(Path path) {
    }

    default void onFinish(Trainer.Summary summary) {
    }
}
