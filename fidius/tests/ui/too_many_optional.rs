#[fidius::plugin_interface(version = 1)]
pub trait Wide: Send + Sync {
    fn required(&self) -> u32;
    #[optional]
    fn opt0(&self) -> u32;
    #[optional]
    fn opt1(&self) -> u32;
    #[optional]
    fn opt2(&self) -> u32;
    #[optional]
    fn opt3(&self) -> u32;
    #[optional]
    fn opt4(&self) -> u32;
    #[optional]
    fn opt5(&self) -> u32;
    #[optional]
    fn opt6(&self) -> u32;
    #[optional]
    fn opt7(&self) -> u32;
    #[optional]
    fn opt8(&self) -> u32;
    #[optional]
    fn opt9(&self) -> u32;
    #[optional]
    fn opt10(&self) -> u32;
    #[optional]
    fn opt11(&self) -> u32;
    #[optional]
    fn opt12(&self) -> u32;
    #[optional]
    fn opt13(&self) -> u32;
    #[optional]
    fn opt14(&self) -> u32;
    #[optional]
    fn opt15(&self) -> u32;
    #[optional]
    fn opt16(&self) -> u32;
    #[optional]
    fn opt17(&self) -> u32;
    #[optional]
    fn opt18(&self) -> u32;
    #[optional]
    fn opt19(&self) -> u32;
    #[optional]
    fn opt20(&self) -> u32;
    #[optional]
    fn opt21(&self) -> u32;
    #[optional]
    fn opt22(&self) -> u32;
    #[optional]
    fn opt23(&self) -> u32;
    #[optional]
    fn opt24(&self) -> u32;
    #[optional]
    fn opt25(&self) -> u32;
    #[optional]
    fn opt26(&self) -> u32;
    #[optional]
    fn opt27(&self) -> u32;
    #[optional]
    fn opt28(&self) -> u32;
    #[optional]
    fn opt29(&self) -> u32;
    #[optional]
    fn opt30(&self) -> u32;
    #[optional]
    fn opt31(&self) -> u32;
    #[optional]
    fn opt32(&self) -> u32;
    #[optional]
    fn opt33(&self) -> u32;
    #[optional]
    fn opt34(&self) -> u32;
    #[optional]
    fn opt35(&self) -> u32;
    #[optional]
    fn opt36(&self) -> u32;
    #[optional]
    fn opt37(&self) -> u32;
    #[optional]
    fn opt38(&self) -> u32;
    #[optional]
    fn opt39(&self) -> u32;
    #[optional]
    fn opt40(&self) -> u32;
    #[optional]
    fn opt41(&self) -> u32;
    #[optional]
    fn opt42(&self) -> u32;
    #[optional]
    fn opt43(&self) -> u32;
    #[optional]
    fn opt44(&self) -> u32;
    #[optional]
    fn opt45(&self) -> u32;
    #[optional]
    fn opt46(&self) -> u32;
    #[optional]
    fn opt47(&self) -> u32;
    #[optional]
    fn opt48(&self) -> u32;
    #[optional]
    fn opt49(&self) -> u32;
    #[optional]
    fn opt50(&self) -> u32;
    #[optional]
    fn opt51(&self) -> u32;
    #[optional]
    fn opt52(&self) -> u32;
    #[optional]
    fn opt53(&self) -> u32;
    #[optional]
    fn opt54(&self) -> u32;
    #[optional]
    fn opt55(&self) -> u32;
    #[optional]
    fn opt56(&self) -> u32;
    #[optional]
    fn opt57(&self) -> u32;
    #[optional]
    fn opt58(&self) -> u32;
    #[optional]
    fn opt59(&self) -> u32;
    #[optional]
    fn opt60(&self) -> u32;
    #[optional]
    fn opt61(&self) -> u32;
    #[optional]
    fn opt62(&self) -> u32;
    #[optional]
    fn opt63(&self) -> u32;
    #[optional]
    fn opt64(&self) -> u32;
}

fn main() {}
