//! Parsing of prompt arguments such as `--box 10,20,100,200` and `--point 50,60,1`, and of
//! thread counts.

use lumen_engine::model::{BoxPrompt, Point};

fn numbers(text: &str, count: usize, what: &str) -> Result<Vec<f32>, String> {
    let values: Result<Vec<f32>, _> = text.split(',').map(|v| v.trim().parse::<f32>()).collect();
    match values {
        Ok(v) if v.len() == count => Ok(v),
        _ => Err(format!(
            "{what} `{text}` must be {count} comma-separated numbers"
        )),
    }
}

/// `x0,y0,x1,y1` in image pixels.
pub fn parse_box(text: &str) -> Result<BoxPrompt, String> {
    let v = numbers(text, 4, "box")?;
    Ok(BoxPrompt {
        x0: v[0],
        y0: v[1],
        x1: v[2],
        y1: v[3],
    })
}

/// `x,y,1` (positive) or `x,y,0` (negative) in image pixels.
pub fn parse_point(text: &str) -> Result<Point, String> {
    let v = numbers(text, 3, "point")?;
    let positive = match v[2] {
        1.0 => true,
        0.0 => false,
        _ => {
            return Err(format!(
                "point `{text}`: the label must be 1 (organ) or 0 (not organ)"
            ));
        }
    };
    Ok(Point {
        x: v[0],
        y: v[1],
        positive,
    })
}

/// A thread count: 0 (one per core) up to four per core. More threads than that only contend
/// (`--threads 999` on two cores ran for minutes without an answer).
pub fn parse_threads(text: &str) -> Result<usize, String> {
    let cores = lumen_engine::runtime::cores();
    let most = 4 * cores;
    match text.trim().parse::<usize>() {
        Ok(n) if n <= most => Ok(n),
        _ => Err(format!(
            "`{text}` is not a thread count for this machine: 0 (one per core) to {most} \
             ({cores} cores)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_box("1, 2,3,4").unwrap(),
            BoxPrompt {
                x0: 1.0,
                y0: 2.0,
                x1: 3.0,
                y1: 4.0
            }
        );
        assert!(!parse_point("5,6,0").unwrap().positive);
        assert!(
            parse_point("5,6,2")
                .unwrap_err()
                .contains("label must be 1")
        );
        assert!(
            parse_box("1,2,3")
                .unwrap_err()
                .contains("4 comma-separated")
        );
    }
}
