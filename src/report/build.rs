//! `ddimlab report DIR`: `report.md`, `tables/*.csv` and `figures/*` from a results
//! folder (also run at the end of every sweep). Works on a partial sweep: it reports
//! the points that are saved and lists the ones that are missing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use polars::prelude::{Column, CsvWriter, DataFrame, SerWriter};

use super::claims::{floor_row, Claim, Claims, Family};
use super::differences::{eta_differences, sampler_differences};
use super::figures::{image_grid, line_chart, scatter_panels, Series};
use super::findings::{across_s_claims, families_text, findings, floor_claims};
use super::low_nfe;
use super::samplers;
use super::tables::{
    ablation, clips, deciding, eta_by_steps, eta_label, etas, find, present, steps, taus, taus_by_steps, timing,
    with_floor, MetricInfo, Table, CONSISTENCY, CONSISTENCY_EXACT, RECON, SAMPLE_QUALITY,
};
use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::experiment::evaluation::Evaluation;
use crate::experiment::plan::Plan;
use crate::experiment::runner::results_hash;
use crate::experiment::ExperimentConfig;
use crate::experiment::{INTERPOLATION_ID, INTERPOLATION_POINTS};
use crate::sampler::SamplerKind;
use crate::shape::DataShape;
use crate::store::manifest::{Manifest, NoiseFloor};
use crate::store::points::load_arrays;
use crate::store::MetricRow;

/// What `report` wrote.
#[derive(Debug, Clone)]
pub struct ReportSummary {
    /// The Markdown report.
    pub path: PathBuf,
    /// Points reported.
    pub points: usize,
    /// Planned points with no saved result.
    pub missing: Vec<String>,
    /// Figures written (stems; each as .png and .svg).
    pub figures: Vec<PathBuf>,
    /// Tables written as CSV.
    pub tables: Vec<PathBuf>,
}

/// Writes a table as CSV through polars: a label column, then one column per header.
fn write_csv(table: &Table, path: &Path) -> Result<()> {
    let header = if table.row_header.is_empty() {
        "row"
    } else {
        table.row_header.as_str()
    };
    let mut columns: Vec<Column> = vec![Column::new(
        header.into(),
        table.rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
    )];
    for (j, name) in table.columns.iter().enumerate() {
        let values: Vec<Option<f64>> = table.rows.iter().map(|r| r.1[j]).collect();
        columns.push(Column::new(name.as_str().into(), values));
        if !table.intervals.is_empty() {
            for (suffix, end) in [("lo", false), ("hi", true)] {
                let ends: Vec<Option<f64>> = (0..table.rows.len())
                    .map(|i| table.interval(i, j).map(|iv| if end { iv.hi } else { iv.lo }))
                    .collect();
                columns.push(Column::new(format!("{name} {suffix}").into(), ends));
            }
        }
    }
    let mut df = DataFrame::new(table.rows.len(), columns).map_err(|e| Error::file(path, e))?;
    let mut bytes = Vec::new();
    CsvWriter::new(&mut bytes)
        .finish(&mut df)
        .map_err(|e| Error::file(path, e))?;
    write_atomic(path, &bytes)
}

/// What a report is built from: the results folder's configuration, manifest, saved
/// rows and noise floor.
struct Input {
    cfg: ExperimentConfig,
    manifest: Option<Manifest>,
    data: crate::data::Dataset,
    plan: Plan,
    /// Every saved row (all solvers), plan order.
    all_rows: Vec<MetricRow>,
    /// DDIM's rows (the η tables, findings and figures).
    rows: Vec<MetricRow>,
    missing: Vec<String>,
    floor: NoiseFloor,
}

impl Input {
    fn load(dir: &Path) -> Result<Self> {
        let cfg = ExperimentConfig::load(&dir.join("config.yaml"))?;
        // A folder without a (readable) manifest is still reported, from its points.
        let manifest = Manifest::load(dir).ok();
        let hash = match &manifest {
            Some(m) => m.config_hash.clone(),
            None => results_hash(&cfg)?,
        };
        let data = crate::experiment::resources::load_data(&cfg)?;
        let plan = Plan::new(&cfg, data.heldout.len())?;
        let (all_rows, missing) = plan.saved_rows(dir, &hash)?;
        let rows = eta_question_rows(&cfg, &all_rows)?;
        if rows.is_empty() {
            return Err(Error::file(
                &dir.join("points"),
                "no saved sweep point to report on: run `ddimlab sweep` first",
            ));
        }
        Ok(Self {
            floor: NoiseFloor::load(dir)?,
            cfg,
            manifest,
            data,
            plan,
            all_rows,
            rows,
            missing,
        })
    }
}

/// The rows of the η question (the paper's tables, findings and figures): DDIM's points of
/// the grid and `sweep.extra`, without those only the low-NFE section asked for (a
/// DDIM η = 0 point at S = 5 would otherwise become the "smallest S" of every η statement
/// with no η = 1 beside it).
pub(super) fn eta_question_rows(cfg: &ExperimentConfig, all_rows: &[MetricRow]) -> Result<Vec<MetricRow>> {
    let mut grid = cfg.clone();
    grid.sweep.low_nfe = None;
    let ids: std::collections::BTreeSet<String> =
        Plan::new(&grid, usize::MAX)?.points.into_iter().map(|p| p.id).collect();
    Ok(all_rows
        .iter()
        .filter(|r| r.sampler == SamplerKind::Ddim.name() && ids.contains(&r.point_id))
        .cloned()
        .collect())
}

/// Appends `tables` to `out`, the first under `heading`.
fn section(out: &mut Vec<(Option<String>, Table)>, heading: Option<String>, tables: Vec<Table>) {
    let mut first = heading;
    for t in tables {
        out.push((first.take(), t));
    }
}

/// The report's tables in order, each under the section heading (and text) it opens,
/// and where the solver comparison (its own family of claims) begins.
struct Sections(Vec<(Option<String>, Table)>, usize);

/// One section of a report: its heading (and text) and its tables; `None` where the
/// results have nothing for it.
type Part = Option<(String, Vec<Table>)>;

impl Sections {
    fn build(input: &Input) -> Self {
        let mut out = Vec::new();
        let eta_question: [fn(&Input) -> Part; 5] = [quality, key_differences, reconstruction, consistency, ablations];
        let solvers: [fn(&Input) -> Part; 2] = [samplers_at_equal_nfe, low_nfe_part];
        for part in eta_question.iter().filter_map(|part| part(input)) {
            section(&mut out, Some(part.0), part.1);
        }
        let solvers_from = out.len();
        for part in solvers.iter().filter_map(|part| part(input)) {
            section(&mut out, Some(part.0), part.1);
        }
        Self(out, solvers_from)
    }

    /// Every claim the tables make: the η question's (the paper's tables) and the solver
    /// comparison's (samplers at equal NFE, low NFE), as two families.
    fn claims(&self) -> (Vec<Claim>, Vec<Claim>) {
        let (eta, solvers) = self.0.split_at(self.1);
        let of = |part: &[(Option<String>, Table)]| part.iter().flat_map(|(_, t)| t.claims()).collect();
        (of(eta), of(solvers))
    }

    fn settle(&mut self, claims: &Claims) {
        self.0.iter_mut().for_each(|(_, t)| t.settle(claims));
    }
}

/// Builds the report of the results folder `dir`.
pub fn report(dir: &Path) -> Result<ReportSummary> {
    let input = Input::load(dir)?;
    let (figures_dir, tables_dir) = (dir.join("figures"), dir.join("tables"));
    for d in [&figures_dir, &tables_dir] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    // 1. lay the tables out; 2. settle every claim they and the findings make, in three
    // families (the η question with the floor; the solvers; reconstruction and consistency
    // across S and η); 3. render.
    let mut sections = Sections::build(&input);
    let floor = floor_row(&input.floor);
    let (mut eta_family, solver_family) = sections.claims();
    eta_family.extend(floor_claims(&input.all_rows));
    let rows = || input.all_rows.iter().chain([&floor]);
    let claims = Claims::settle_as(Family::Eta, rows(), eta_family)
        .and(Claims::settle_as(Family::Solvers, rows(), solver_family))
        .and(Claims::settle_as(Family::AcrossS, rows(), across_s_claims(&input.rows)));
    sections.settle(&claims);

    let mut md = header(&input, &claims);
    let _ = writeln!(md, "## What this run shows\n");
    for f in findings(&input.rows, &claims) {
        let _ = writeln!(md, "- {f}");
    }
    let _ = writeln!(md);
    let mut tables = Vec::new();
    for (heading, t) in sections.0 {
        if let Some(h) = heading {
            let _ = writeln!(md, "{h}");
        }
        push_table(&mut md, &mut tables, t);
    }
    let mut figures = draw_figures(dir, &input.data, &input.rows, &input.floor, &figures_dir)?;
    if samplers::compares_samplers(&input.all_rows) {
        figures.extend(samplers::figures(&input.all_rows, &figures_dir)?);
    }
    let _ = writeln!(md, "## Figures\n");
    for f in &figures {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let _ = writeln!(md, "![{name}](figures/{name}.png)\n");
    }
    let _ = writeln!(md, "## Timing\n");
    push_table(&mut md, &mut tables, timing(&input.all_rows));

    let mut table_paths = Vec::new();
    for t in &tables {
        let path = tables_dir.join(format!("{}.csv", t.name));
        write_csv(t, &path)?;
        table_paths.push(path);
    }
    let path = dir.join("report.md");
    write_atomic(&path, md.as_bytes())?;
    Ok(ReportSummary {
        path,
        points: input.all_rows.len(),
        missing: input.missing,
        figures,
        tables: table_paths,
    })
}

/// The report's title and run summary: what was run, what the samples were compared
/// with, how the cells and the bold are to be read, and what is missing.
fn header(input: &Input, claims: &Claims) -> String {
    let (cfg, plan) = (&input.cfg, &input.plan);
    let mut md = String::new();
    let _ = writeln!(md, "# {}: DDIM steps vs quality\n", cfg.name);
    let _ = writeln!(
        md,
        "Data `{}`, model `{}`, {} samples per point from the same x_T (seed {}), schedule {} with T = {}.",
        cfg.data.kind,
        cfg.model.kind,
        plan.samples,
        cfg.seed,
        cfg.schedule.kind.name(),
        cfg.schedule.timesteps
    );
    if let Some(m) = &input.manifest {
        let _ = writeln!(
            md,
            "Run on {} (ddimlab {}, commit {}): {:.1} s wall, {:.1} s in model evaluations, {:.1} % of point \
             time outside them.{}",
            m.device,
            m.ddimlab_version,
            m.git_commit,
            m.wall_seconds,
            m.model_seconds,
            100.0 * m.outside_share,
            m.classifier_accuracy
                .map(|a| format!(" Feature classifier held-out accuracy: {:.1} %.", 100.0 * a))
                .unwrap_or_default()
        );
    }
    let compared_with = input
        .manifest
        .as_ref()
        .map(|m| m.compared_with.clone())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| input.floor.compared_with.clone());
    let _ = writeln!(
        md,
        "\nSample statistics: {compared_with}; {}. Lower is better except for PSNR and the classifier's \
         confidence; nn_ratio is ideal at 1. Each value carries ± half its 95 % bootstrap interval ({} replicates \
         over generated and reference samples, {} interval; the exact ends are the `_lo` / `_hi` columns of \
         metrics.parquet, every replicate is in bootstrap.parquet). The **noise floor** row is the same statistic \
         between an independent real set and the reference: what real data score at this sample size. Only the \
         statistics that decide ({}) are ranked: **bold** is the best cell of its column where its paired \
         difference to every other cell of the column holds, and a difference cell where it holds, after Holm's \
         correction within its family ({}). Reconstruction and consistency errors are compared row by row (the \
         sign test on the held-out rows and the samples, which every point shares; rows.parquet). †: NFE < S (the quadratic τ repeats timesteps at this S; \
         repeats are dropped).\n",
        Evaluation::of(input.data.shape()).describe(),
        cfg.sweep.bootstrap,
        crate::metrics::bootstrap::MARGINAL,
        deciding(&input.rows)
            .iter()
            .map(|m| m.name)
            .collect::<Vec<_>>()
            .join(", "),
        families_text(claims),
    );
    if let Some(loss) = input.manifest.as_ref().and_then(|m| m.heldout_loss) {
        let _ = writeln!(md, "Held-out L_simple of the model: {loss:.4}.\n");
    }
    if !input.missing.is_empty() {
        let _ = writeln!(
            md,
            "**Incomplete sweep: {} of {} points missing** ({}). Run `ddimlab sweep` again to finish it.\n",
            input.missing.len(),
            plan.points.len(),
            input.missing.join(", ")
        );
    }
    md
}

fn push_table(md: &mut String, tables: &mut Vec<Table>, t: Table) {
    let _ = writeln!(md, "### {}\n\n{}", t.title, t.markdown());
    tables.push(t);
}

/// τ kinds against each other, and clipping on vs off, for every metric (baseline: the first).
fn ablation_tables(rows: &[MetricRow], eta: &str) -> Vec<Table> {
    let metrics: Vec<MetricInfo> = present(rows, &SAMPLE_QUALITY)
        .into_iter()
        .chain(present(rows, &[RECON]))
        .collect();
    let (taus, clips) = (taus(rows), clips(rows));
    let mut out = Vec::new();
    if taus.len() > 1 {
        let settings: Vec<(String, String, bool)> =
            taus.iter().map(|t| (format!("{t} τ"), t.clone(), clips[0])).collect();
        out.extend(metrics.iter().map(|m| ablation(rows, m, eta, &settings)));
    }
    if clips.len() > 1 {
        for tau in &taus {
            let settings: Vec<(String, String, bool)> = clips
                .iter()
                .map(|&c| {
                    (
                        format!("{tau} τ, clip {}", if c { "on" } else { "off" }),
                        tau.clone(),
                        c,
                    )
                })
                .collect();
            out.extend(metrics.iter().map(|m| ablation(rows, m, eta, &settings)));
        }
    }
    out
}

/// A label as figures write it: the font has no combining circumflex, so σ̂ is spelled
/// out as σ-hat.
fn plottable(label: &str) -> String {
    label.replace('\u{302}', "-hat")
}

/// The η label in figures.
fn plot_label(eta: &str) -> String {
    plottable(&eta_label(eta))
}

/// One line per table row: its cells against the sweep's S values (`steps`, the
/// table's columns), with its interval band where known; missing cells are left out.
fn series(table: &Table, steps: &[usize]) -> Vec<Series> {
    table
        .rows
        .iter()
        .enumerate()
        .map(|(i, (label, cells))| Series {
            label: plottable(label),
            points: steps
                .iter()
                .zip(cells)
                .filter_map(|(&s, c)| Some((s as f64, (*c)?)))
                .collect(),
            band: steps
                .iter()
                .enumerate()
                .filter_map(|(j, &s)| table.interval(i, j).map(|iv| (s as f64, iv.lo, iv.hi)))
                .collect(),
        })
        .collect()
}

fn draw_figures(
    dir: &Path,
    data: &crate::data::Dataset,
    rows: &[MetricRow],
    floor: &NoiseFloor,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let mut figures = Vec::new();
    let clip = rows[0].clip_x0;
    for tau in taus(rows) {
        for m in present(rows, &SAMPLE_QUALITY) {
            let stem = out.join(format!("{}_{tau}", m.name));
            line_chart(
                &stem,
                &format!("{} — {tau} τ", m.label),
                "S (sampling steps)",
                m.name,
                &series(&with_floor(eta_by_steps(rows, &m, &tau, clip), &m, floor), &steps(rows)),
                true,
                false,
            )?;
            figures.push(stem);
        }
        for m in present(rows, &[CONSISTENCY, CONSISTENCY_EXACT]) {
            let stem = out.join(format!("{}_{tau}", m.name));
            line_chart(
                &stem,
                &format!("Consistency — {tau} τ"),
                "S (sampling steps)",
                if m.name == CONSISTENCY.name {
                    "MSE to the reference x_0"
                } else {
                    "MSE to the exact flow x_0"
                },
                &series(&eta_by_steps(rows, &m, &tau, clip), &steps(rows)),
                true,
                true,
            )?;
            figures.push(stem);
        }
    }
    if !present(rows, &[RECON]).is_empty() {
        let eta = etas(rows).into_iter().next().unwrap_or_default();
        let series = series(&taus_by_steps(rows, &RECON, &eta, clip), &steps(rows));
        let stem = out.join("recon_mse");
        line_chart(
            &stem,
            "Reconstruction error vs S (encode, then decode)",
            "S (sampling steps)",
            RECON.label,
            &series,
            true,
            true,
        )?;
        figures.push(stem);
    }
    figures.extend(sample_figures(dir, data, rows, out)?);
    Ok(figures)
}

/// The slerp interpolation grid saved by the sweep (paper §5.4): one row per latent pair.
fn interpolation_figure(dir: &Path, out: &Path, (channels, height, width): (usize, usize, usize)) -> Result<PathBuf> {
    let a = load_arrays(dir, INTERPOLATION_ID)?;
    let n = channels * height * width;
    let images: Vec<Vec<f32>> = a.samples.chunks(n).map(<[f32]>::to_vec).collect();
    let per_row = INTERPOLATION_POINTS.min(images.len().max(1));
    let rows: Vec<(String, Vec<Vec<f32>>)> = images
        .chunks(per_row)
        .enumerate()
        .map(|(k, imgs)| (format!("x_T pair {}", k + 1), imgs.to_vec()))
        .collect();
    let columns: Vec<String> = (0..per_row)
        .map(|j| format!("α = {:.3}", j as f64 / (per_row.max(2) - 1) as f64))
        .collect();
    let stem = out.join("interpolation");
    image_grid(
        &stem,
        &format!(
            "Slerp between two x_T, decoded with DDIM (η = 0, S = {})",
            a.timesteps.len()
        ),
        &rows,
        (channels, height, width),
        &columns,
    )?;
    Ok(stem)
}

/// The first `values` sample values of every (η, S) point of one τ kind, labelled, in
/// sweep order (points that are missing are skipped).
fn labelled_samples(
    dir: &Path,
    rows: &[MetricRow],
    tau: &str,
    clip: bool,
    values: usize,
) -> Result<Vec<(String, Vec<f32>)>> {
    let mut out = Vec::new();
    for eta in etas(rows) {
        for s in steps(rows) {
            if let Some(r) = find(rows, tau, &eta, s, clip) {
                let mut samples = load_arrays(dir, &r.point_id)?.samples;
                samples.truncate(values);
                out.push((format!("{}, S = {s}", plot_label(&eta)), samples));
            }
        }
    }
    Ok(out)
}

/// Samples from the same x_T for every (η, S): image grids, or scatter plots over the data.
fn sample_figures(dir: &Path, data: &crate::data::Dataset, rows: &[MetricRow], out: &Path) -> Result<Vec<PathBuf>> {
    let clip = rows[0].clip_x0;
    let mut figures = Vec::new();
    for tau in taus(rows) {
        let stem = out.join(format!("samples_{tau}"));
        match data.shape() {
            DataShape::Image {
                channels,
                height,
                width,
            } => {
                let n = channels * height * width;
                let grid: Vec<(String, Vec<Vec<f32>>)> = labelled_samples(dir, rows, &tau, clip, 10 * n)?
                    .into_iter()
                    .map(|(label, x)| (label, x.chunks(n).map(<[f32]>::to_vec).collect()))
                    .collect();
                image_grid(
                    &stem,
                    &format!("Samples from the same x_T — {tau} τ"),
                    &grid,
                    (channels, height, width),
                    &[],
                )?;
                if tau == taus(rows)[0] && dir.join("points").join(format!("{INTERPOLATION_ID}.json")).exists() {
                    figures.push(interpolation_figure(dir, out, (channels, height, width))?);
                }
            }
            DataShape::Vector(2) => {
                let background: Vec<(f64, f64)> = data
                    .heldout
                    .values
                    .chunks(2)
                    .map(|p| (p[0] as f64, p[1] as f64))
                    .collect();
                let panels: Vec<(String, Vec<(f64, f64)>)> = labelled_samples(dir, rows, &tau, clip, 2000)?
                    .into_iter()
                    .map(|(label, x)| (label, x.chunks(2).map(|p| (p[0] as f64, p[1] as f64)).collect()))
                    .collect();
                scatter_panels(
                    &stem,
                    &format!("Samples (colour) over held-out data (grey) — {tau} τ"),
                    &background,
                    &panels,
                    steps(rows).len(),
                )?;
            }
            DataShape::Vector(_) => continue,
        }
        figures.push(stem);
    }
    Ok(figures)
}

/// Table 1's layout: every sample-quality statistic, η by S, per clip and τ, with its floor.
fn quality(input: &Input) -> Part {
    let (rows, floor) = (&input.rows, &input.floor);
    let mut tables = Vec::new();
    for &clip in &clips(rows) {
        for tau in taus(rows) {
            for m in present(rows, &SAMPLE_QUALITY) {
                tables.push(with_floor(eta_by_steps(rows, &m, &tau, clip), &m, floor));
            }
        }
    }
    Some(("## Sample quality (Table 1 layout)\n".into(), tables))
}

/// The paired differences of the η question (and of each point to the floor).
fn key_differences(input: &Input) -> Part {
    let (rows, floor) = (&input.rows, &input.floor);
    let floor_row = floor_row(floor);
    Some((
        "## Key differences (paired)\n\nEach cell: the difference of the two points' statistic ± half its \
         95 % paired bootstrap interval (the points share x_T, noise, reference and resamples); **bold**: \
         the difference holds after Holm's correction across the report.\n"
            .into(),
        eta_differences(rows, (!floor.replicates.is_empty()).then_some(&floor_row)),
    ))
}

/// Table 2's layout: reconstruction error, τ by S.
fn reconstruction(input: &Input) -> Part {
    let rows = &input.rows;
    if present(rows, &[RECON]).is_empty() {
        return None;
    }
    let first_eta = etas(rows).into_iter().next().unwrap_or_default();
    Some((
        "## Reconstruction error (Table 2 layout)\n\nHeld-out x_0 encoded to x_T and decoded back \
         with the same S (η = 0 both ways): the mean over the held-out rows, without an interval (a few rows \
         can carry most of the mean); two S are compared row by row in the findings (sign test).\n"
            .into(),
        clips(rows)
            .iter()
            .map(|&clip| taus_by_steps(rows, &RECON, &first_eta, clip))
            .collect(),
    ))
}

/// §5.3's consistency, η by S, per clip and τ.
fn consistency(input: &Input) -> Part {
    let rows = &input.rows;
    let consistency = present(rows, &[CONSISTENCY, CONSISTENCY_EXACT]);
    if consistency.is_empty() {
        return None;
    }
    let mut tables = Vec::new();
    for &clip in &clips(rows) {
        for tau in taus(rows) {
            tables.extend(consistency.iter().map(|m| eta_by_steps(rows, m, &tau, clip)));
        }
    }
    Some((
        format!(
            "## Consistency (paper §5.3)\n\nDistance between x_0 at S steps and x_0 of the reference run \
             (η = 0, S = {}) from the same x_T (0 for the reference itself, which log-scale figures leave \
             out): the mean over the samples, without an interval; two points are compared sample by sample \
             in the findings (sign test).\n",
            input.cfg.sweep.reference_steps()
        ),
        tables,
    ))
}

/// The ablations (τ kinds, clipping) at the first η.
fn ablations(input: &Input) -> Part {
    let first_eta = etas(&input.rows).into_iter().next().unwrap_or_default();
    Some(("## Ablations\n".into(), ablation_tables(&input.rows, &first_eta)))
}

/// DDIM at η = 0 against the other solvers at equal NFE, with their fitted orders.
fn samplers_at_equal_nfe(input: &Input) -> Part {
    if !samplers::compares_samplers(&input.all_rows) {
        return None;
    }
    let mut text = String::from(
        "## Samplers at equal NFE\n\nDDIM at η = 0 against the solvers that followed it, from the same \
         x_T. Columns are S; each row's NFE per S is in its label, and the figures plot every metric \
         against NFE itself.\n\n",
    );
    let orders = samplers::fitted_orders(&input.all_rows);
    if orders.is_empty() {
        let _ = writeln!(text, "- {}", samplers::NO_ORDERS);
    }
    for line in orders {
        let _ = writeln!(text, "- {line}");
    }
    let mut tables = samplers::tables(&input.all_rows, &input.cfg.sweep.steps);
    tables.extend(sampler_differences(&input.all_rows));
    Some((text, tables))
}

/// Every solver on every step schedule of `sweep.low_nfe` at its NFE targets.
fn low_nfe_part(input: &Input) -> Part {
    let targets = low_nfe::Targets::of(&input.cfg.sweep)?;
    let nfe: Vec<String> = targets.nfe.iter().map(|n| n.to_string()).collect();
    Some((
        format!(
            "## Low NFE\n\nEvery solver on every step schedule of `sweep.low_nfe` at NFE ≤ {}: each \
             cell is the point with the most model evaluations within the target (the row label lists \
             the NFE each cell used), from the same x_T; **bold**: the best of a column where its paired \
             differences to all others hold after Holm's correction. Consistency is measured only on the \
             τ kinds that have a reference (`sweep.tau`).\n",
            nfe.join(", ")
        ),
        low_nfe::tables(&input.all_rows, &targets),
    ))
}
