//! Schedules and tau subsequences against hand derivations.

use ddimlab::schedule::{BetaSchedule, Schedule, Tau, TauKind};

#[test]
fn linear_schedule_matches_hand_values() {
    let s = Schedule::ddpm_linear();
    assert_eq!(s.timesteps(), 1000);
    // β_0 = 1e-4, β_999 = 0.02, β_1 = 1e-4 + 0.0199/999.
    assert_eq!(s.betas()[0], 1e-4);
    assert_eq!(s.betas()[999], 0.02);
    assert!((s.betas()[1] - (1e-4 + 0.0199 / 999.0)).abs() < 1e-18);
    // ᾱ_0 = 1 − β_0; ᾱ_1 = (1 − β_0)(1 − β_1).
    assert_eq!(s.alpha_bars()[0], 1.0 - 1e-4);
    assert!((s.alpha_bars()[1] - (1.0 - 1e-4) * (1.0 - 1e-4 - 0.0199 / 999.0)).abs() < 1e-15);
    // ln ᾱ_999 = Σ ln(1 − β_t) ≈ −Σβ − Σβ²/2 − Σβ³/3 with Σβ = 1000·(β_0 + β_999)/2 = 10.05.
    let sum_b = 1000.0 * (1e-4 + 0.02) / 2.0;
    let sum_b2: f64 = (0..1000).map(|i| (1e-4 + 0.0199 * i as f64 / 999.0).powi(2)).sum();
    let sum_b3: f64 = (0..1000).map(|i| (1e-4 + 0.0199 * i as f64 / 999.0).powi(3)).sum();
    let approx = (-sum_b - sum_b2 / 2.0 - sum_b3 / 3.0).exp();
    let a999 = s.alpha_bars()[999];
    assert!((a999 - approx).abs() / approx < 1e-4, "ᾱ_999 = {a999}, series {approx}");
    assert!((a999 - 4.04e-5).abs() < 0.01e-5, "ᾱ_999 = {a999} ≈ 4.04e-5");
    assert_eq!(s.alpha_bar(None), 1.0);
}

#[test]
fn quadratic_schedule_is_linear_in_sqrt_beta() {
    let s = Schedule::new(BetaSchedule::Quadratic, 3, 1e-4, 0.02).unwrap();
    let mid = ((0.01 + 0.02f64.sqrt()) / 2.0).powi(2);
    assert!((s.betas()[0] - 1e-4).abs() < 1e-18);
    assert!((s.betas()[1] - mid).abs() < 1e-15);
    assert!((s.betas()[2] - 0.02).abs() < 1e-15);
    assert!((s.alpha_bars()[2] - (1.0 - 1e-4) * (1.0 - mid) * 0.98).abs() < 1e-14);
}

#[test]
fn cosine_schedule_telescopes_to_its_closed_form() {
    // Without clipping ∏ (1 − β_i) = ∏ f((i+1)/T)/f(i/T) = f((t+1)/T)/f(0).
    let t_max = 1000;
    let s = Schedule::new(BetaSchedule::Cosine, t_max, 0.0, 0.0).unwrap();
    let f = |u: f64| ((u + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
    for t in [0, 1, 10, 500, 900, 990] {
        let exact = f((t + 1) as f64 / t_max as f64) / f(0.0);
        assert!((s.alpha_bars()[t] - exact).abs() < 1e-12 * exact.max(1e-3), "t = {t}");
    }
    // f(1) = cos²(π/2) = 0, so the last β is clipped at 0.999.
    assert_eq!(s.betas()[t_max - 1], 0.999);
    assert!(s.betas().iter().all(|b| *b > 0.0 && *b <= 0.999));
}

#[test]
fn bad_schedules_are_refused_with_reasons() {
    let err = Schedule::new(BetaSchedule::Linear, 1000, 0.02, 0.02)
        .unwrap_err()
        .to_string();
    assert!(err.contains("beta_start < beta_end"), "{err}");
    let err = Schedule::new(BetaSchedule::Linear, 1000, 0.02, 0.01)
        .unwrap_err()
        .to_string();
    assert!(err.contains("beta_start = 0.02"), "{err}");
    let err = Schedule::new(BetaSchedule::Quadratic, 1000, 1e-4, 1.5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("< 1"), "{err}");
    let err = Schedule::new(BetaSchedule::Linear, 0, 1e-4, 0.02)
        .unwrap_err()
        .to_string();
    assert!(err.contains("timesteps = 0"), "{err}");
    assert!(Schedule::new(BetaSchedule::Linear, 10, f64::NAN, 0.02).is_err());
}

#[test]
fn linear_tau_is_the_official_range_when_s_divides_t() {
    for s in [1, 10, 20, 50, 100, 1000] {
        let tau = Tau::new(TauKind::Linear, s, 1000).unwrap();
        let official: Vec<usize> = (0..1000).step_by(1000 / s).collect();
        assert_eq!(tau.timesteps(), official.as_slice(), "S = {s}");
        assert_eq!((tau.steps(), tau.len()), (s, s));
    }
    // Otherwise exactly S steps: ⌊i·1000/7⌋.
    let tau = Tau::new(TauKind::Linear, 7, 1000).unwrap();
    assert_eq!(tau.timesteps(), &[0, 142, 285, 428, 571, 714, 857]);
}

#[test]
fn quadratic_tau_tops_out_at_exactly_0_8_t() {
    let tau = Tau::new(TauKind::Quadratic, 100, 1000).unwrap();
    assert_eq!(*tau.timesteps().last().unwrap(), 800);
    // τ_i = ⌊800 i²/81⌋ at S = 10.
    let tau = Tau::new(TauKind::Quadratic, 10, 1000).unwrap();
    assert_eq!(tau.timesteps(), &[0, 9, 39, 88, 158, 246, 355, 483, 632, 800]);
    assert_eq!(Tau::new(TauKind::Quadratic, 1, 1000).unwrap().timesteps(), &[0]);
    assert_eq!(Tau::new(TauKind::Quadratic, 2, 1000).unwrap().timesteps(), &[0, 800]);
}

#[test]
fn quadratic_tau_drops_repeats_and_keeps_both_counts() {
    // sqrt(0.8 T) + 1 ≈ 29.3: up to S = 29 all distinct, from S = 30 repeats (τ_0 = τ_1 = 0).
    let t29 = Tau::new(TauKind::Quadratic, 29, 1000).unwrap();
    assert_eq!(t29.len(), 29);
    let t30 = Tau::new(TauKind::Quadratic, 30, 1000).unwrap();
    assert_eq!((t30.steps(), t30.len()), (30, 29));
    let t1000 = Tau::new(TauKind::Quadratic, 1000, 1000).unwrap();
    assert_eq!(t1000.steps(), 1000);
    assert!(t1000.len() < 1000 && t1000.len() > 500, "nfe = {}", t1000.len());
    assert!(t1000.timesteps().windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn trailing_tau_starts_at_t_minus_one_and_rounds_half_to_even() {
    let tau = Tau::new(TauKind::Trailing, 10, 1000).unwrap();
    assert_eq!(tau.timesteps(), &[99, 199, 299, 399, 499, 599, 699, 799, 899, 999]);
    // S = 16: 1000 − 3·62.5 = 812.5 rounds to 812 (even), minus one: 811.
    let tau = Tau::new(TauKind::Trailing, 16, 1000).unwrap();
    assert!(tau.timesteps().contains(&811) && !tau.timesteps().contains(&812));
    assert_eq!(*tau.timesteps().last().unwrap(), 999);
    assert_eq!(tau.len(), 16);
    let all = Tau::new(TauKind::Trailing, 1000, 1000).unwrap();
    assert_eq!(
        all.timesteps(),
        Tau::new(TauKind::Linear, 1000, 1000).unwrap().timesteps()
    );
}

#[test]
fn steps_out_of_range_name_the_value_and_the_range() {
    for &kind in TauKind::ALL {
        for s in [0, 1001] {
            let err = Tau::new(kind, s, 1000).unwrap_err().to_string();
            assert!(
                err.contains(&format!("steps = {s}")) && err.contains("between 1 and T = 1000"),
                "{err}"
            );
        }
    }
}

#[test]
fn transitions_walk_tau_backwards_onto_clean_data() {
    let tau = Tau::new(TauKind::Linear, 4, 1000).unwrap();
    let tr: Vec<_> = tau.transitions().collect();
    assert_eq!(tr, vec![(750, Some(500)), (500, Some(250)), (250, Some(0)), (0, None)]);
}
