//! The paper's own figures (Tables 5.9 and 5.10) and its names for the networks, to set beside
//! ours.

use crate::he::packing::PackingId;
use crate::model::arch::Arch;

/// What the paper measured for one network with one packing. Counts are per inference (per
/// image channel-wise, per 8192-image run batch-axis) and only as exact as printed: MNIST's
/// HMulPlain and every CIFAR-10 count are in thousands with one decimal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    /// Encrypted accuracy, percent.
    pub he_accuracy: f64,
    /// HMulPlain, HSquare, rotation, relinearization, rescale (the order of [`COUNTED`]).
    pub counts: [f64; 5],
    /// On 72 threads of 4× Xeon E7-8880 v3; batch-axis: mean of runs 2–4.
    pub latency_s: f64,
}

/// The operations the paper counts, as named in [`crate::he::counts::OpTally`], and its row titles.
pub const COUNTED: [(&str, &str); 5] = [
    ("hmulplain", "HMulPlain"),
    ("hsquare", "HSquare"),
    ("rotation", "rotations"),
    ("relinearize", "relin."),
    ("rescale", "rescale"),
];

/// The paper's figures for one network: plain accuracy and each packing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    /// Plain accuracy, percent.
    pub plain_accuracy: f64,
    pub batch: Option<Measured>,
    pub channel: Option<Measured>,
}

impl Figures {
    /// The measurement for `packing`: `batch`, or any channel-wise packing (the paper has one).
    pub fn packing(&self, packing: PackingId) -> Option<Measured> {
        if packing.is_channel_wise() {
            self.channel
        } else {
            self.batch
        }
    }
}

const K: f64 = 1e3;

const fn m(he_accuracy: f64, counts: [f64; 5], latency_s: f64) -> Option<Measured> {
    Some(Measured {
        he_accuracy,
        counts,
        latency_s,
    })
}

/// (architecture, activation, conv2 width, figures).
const TABLE: &[(&str, &str, usize, Figures)] = &[
    // Table 5.9, MNIST 3layer-CNN
    (
        "mnist-3layer",
        "square",
        50,
        Figures {
            plain_accuracy: 99.35,
            batch: m(99.35, [126.0 * K, 1520.0, 0.0, 1520.0, 3050.0], 6.44),
            channel: m(99.35, [6.4 * K, 55.0, 330.0, 55.0, 120.0], 0.71),
        },
    ),
    (
        "mnist-3layer",
        "square",
        40,
        Figures {
            plain_accuracy: 98.61,
            batch: m(98.54, [104.4 * K, 1360.0, 0.0, 1360.0, 2730.0], 5.99),
            channel: m(98.54, [5.1 * K, 45.0, 320.0, 45.0, 100.0], 0.65),
        },
    ),
    (
        "mnist-3layer",
        "square",
        32,
        Figures {
            plain_accuracy: 96.68,
            batch: m(96.58, [87.1 * K, 1232.0, 0.0, 1232.0, 2474.0], 5.37),
            channel: m(96.58, [4.1 * K, 37.0, 312.0, 37.0, 84.0], 0.60),
        },
    ),
    (
        "mnist-3layer",
        "swish-rg5-deg2",
        50,
        Figures {
            plain_accuracy: 99.48,
            batch: m(99.48, [127.5 * K, 1520.0, 0.0, 1520.0, 3050.0], 6.35),
            channel: m(99.48, [6.4 * K, 55.0, 330.0, 55.0, 120.0], 0.72),
        },
    ),
    (
        "mnist-3layer",
        "swish-rg5-deg2",
        40,
        Figures {
            plain_accuracy: 98.83,
            batch: m(98.80, [105.8 * K, 1360.0, 0.0, 1360.0, 2730.0], 5.25),
            channel: m(98.80, [5.2 * K, 45.0, 320.0, 45.0, 100.0], 0.65),
        },
    ),
    (
        "mnist-3layer",
        "swish-rg5-deg2",
        32,
        Figures {
            plain_accuracy: 95.52,
            batch: m(95.32, [88.4 * K, 1232.0, 0.0, 1232.0, 2474.0], 4.71),
            channel: m(95.32, [4.2 * K, 37.0, 312.0, 37.0, 84.0], 0.60),
        },
    ),
    (
        "mnist-3layer",
        "swish-rg7-deg4",
        50,
        Figures {
            plain_accuracy: 99.52,
            batch: m(99.52, [129.0 * K, 3040.0, 0.0, 3040.0, 4570.0], 10.72),
            channel: m(99.52, [6.5 * K, 110.0, 330.0, 110.0, 174.0], 0.97),
        },
    ),
    (
        "mnist-3layer",
        "swish-rg7-deg4",
        40,
        Figures {
            plain_accuracy: 97.77,
            batch: m(97.63, [107.1 * K, 2720.0, 0.0, 2720.0, 4088.0], 9.94),
            channel: m(97.63, [5.2 * K, 90.0, 320.0, 90.0, 145.0], 0.88),
        },
    ),
    (
        "mnist-3layer",
        "swish-rg7-deg4",
        32,
        Figures {
            plain_accuracy: 96.78,
            batch: m(96.62, [89.6 * K, 2464.0, 0.0, 2464.0, 3706.0], 8.21),
            channel: m(96.62, [4.2 * K, 74.0, 312.0, 74.0, 121.0], 0.84),
        },
    ),
    // Table 5.10, CIFAR-10 4layer-CNN
    (
        "cifar10-4layer",
        "square",
        64,
        Figures {
            plain_accuracy: 79.17,
            batch: m(
                79.22,
                [9148.0 * K, 57.3 * K, 0.0, 57.3 * K, 114.7 * K],
                505.6,
            ),
            channel: m(79.22, [93.2 * K, 0.2 * K, 4.1 * K, 0.2 * K, 0.6 * K], 9.8),
        },
    ),
    (
        "cifar10-4layer",
        "square",
        58,
        Figures {
            plain_accuracy: 72.73,
            batch: m(
                72.14,
                [8370.0 * K, 55.8 * K, 0.0, 55.8 * K, 111.6 * K],
                490.5,
            ),
            channel: m(72.42, [84.5 * K, 0.2 * K, 4.0 * K, 0.2 * K, 0.6 * K], 8.9),
        },
    ),
    (
        "cifar10-4layer",
        "square",
        52,
        Figures {
            plain_accuracy: 66.70,
            batch: m(
                66.27,
                [7592.0 * K, 54.3 * K, 0.0, 54.3 * K, 108.5 * K],
                447.1,
            ),
            channel: m(66.52, [75.9 * K, 0.2 * K, 3.9 * K, 0.2 * K, 0.6 * K], 8.1),
        },
    ),
    (
        "cifar10-4layer",
        "swish-rg5-deg2",
        64,
        Figures {
            plain_accuracy: 79.53,
            batch: m(
                79.52,
                [9205.0 * K, 57.3 * K, 0.0, 57.3 * K, 114.7 * K],
                526.7,
            ),
            channel: m(79.55, [93.4 * K, 0.2 * K, 4.1 * K, 0.2 * K, 0.6 * K], 9.6),
        },
    ),
    (
        "cifar10-4layer",
        "swish-rg5-deg2",
        58,
        Figures {
            plain_accuracy: 73.93,
            batch: m(
                73.84,
                [8426.0 * K, 55.8 * K, 0.0, 55.7 * K, 111.3 * K],
                488.1,
            ),
            channel: m(73.79, [84.7 * K, 0.2 * K, 4.0 * K, 0.2 * K, 0.6 * K], 8.8),
        },
    ),
    (
        "cifar10-4layer",
        "swish-rg5-deg2",
        52,
        Figures {
            plain_accuracy: 64.94,
            batch: m(
                64.40,
                [7646.0 * K, 54.2 * K, 0.0, 54.2 * K, 108.2 * K],
                456.5,
            ),
            channel: m(64.35, [76.1 * K, 0.2 * K, 3.9 * K, 0.2 * K, 0.6 * K], 8.2),
        },
    ),
    (
        "cifar10-4layer",
        "swish-rg7-deg4",
        64,
        Figures {
            plain_accuracy: 80.91,
            batch: m(
                80.72,
                [9263.0 * K, 114.7 * K, 0.0, 114.7 * K, 171.4 * K],
                851.3,
            ),
            channel: m(80.96, [93.6 * K, 0.4 * K, 4.1 * K, 0.4 * K, 0.8 * K], 12.9),
        },
    ),
    (
        "cifar10-4layer",
        "swish-rg7-deg4",
        58,
        Figures {
            plain_accuracy: 76.69,
            batch: m(
                76.34,
                [8482.0 * K, 111.6 * K, 0.0, 111.6 * K, 166.5 * K],
                786.3,
            ),
            channel: m(76.58, [85.0 * K, 0.4 * K, 4.0 * K, 0.4 * K, 0.8 * K], 11.7),
        },
    ),
    (
        "cifar10-4layer",
        "swish-rg7-deg4",
        52,
        Figures {
            plain_accuracy: 73.18,
            batch: m(
                72.76,
                [7701.0 * K, 108.5 * K, 0.0, 108.5 * K, 166.5 * K],
                727.2,
            ),
            channel: m(72.85, [76.3 * K, 0.4 * K, 3.9 * K, 0.4 * K, 0.8 * K], 10.5),
        },
    ),
    // Fig. 5.1 gives Pruned30%'s plain accuracy only
    (
        "cifar10-4layer",
        "swish-rg7-deg4",
        45,
        Figures {
            plain_accuracy: 65.20,
            batch: None,
            channel: None,
        },
    ),
];

/// The paper's figures for a network, if it evaluated one of that architecture, activation and
/// conv2 width.
pub fn figures(architecture: &str, activation: &str, conv2: usize) -> Option<Figures> {
    TABLE
        .iter()
        .find(|(a, act, c, _)| *a == architecture && *act == activation && *c == conv2)
        .map(|(_, _, _, f)| *f)
}

fn arch(architecture: &str) -> Option<Arch> {
    Arch::named(architecture)
}

/// The paper's name for a network: `3layer-CNN`, `3layer-CNN-Pruned-R1`, `4layer-CNN-Pruned20%`;
/// another conv2 width is named by its width.
pub fn network_name(architecture: &str, conv2: usize) -> String {
    let Some(a) = arch(architecture) else {
        return format!("{architecture} (conv2 {conv2})");
    };
    let base = match a {
        Arch::Mnist3Layer => "3layer-CNN",
        Arch::Cifar10FourLayer => "4layer-CNN",
    };
    let step = match (a, conv2) {
        (_, c) if c == a.default_conv2() => "",
        (Arch::Mnist3Layer, 40) => "-Pruned-R1",
        (Arch::Mnist3Layer, 32) => "-Pruned-R2",
        (Arch::Cifar10FourLayer, 58) => "-Pruned10%",
        (Arch::Cifar10FourLayer, 52) => "-Pruned20%",
        (Arch::Cifar10FourLayer, 45) => "-Pruned30%",
        _ => return format!("{base} (conv2 {conv2})"),
    };
    format!("{base}{step}")
}

/// The fraction of conv2's filters removed from the paper's width (0 for the unpruned network).
pub fn pruning_ratio(architecture: &str, conv2: usize) -> Option<f64> {
    let full = arch(architecture)?.default_conv2() as f64;
    Some((full - conv2 as f64) / full)
}

/// The dataset an architecture classifies, for headings.
pub fn dataset_name(architecture: &str) -> String {
    arch(architecture).map_or(architecture.to_string(), |a| a.dataset().to_string())
}
