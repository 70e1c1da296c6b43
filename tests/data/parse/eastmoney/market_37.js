var ajaxResult = {
 "record": [
  {
   "title": "A股三大指数集体收涨 创业板指涨超2%",
   "medianame": "证券时报网",
   "infoCode": "NW202205312398034850",
   "datetime": "2022-05-31 15:02:11"
  }
 ]
};
