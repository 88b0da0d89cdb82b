"""Word lists for gen_slimpajama.py (a fixed vocabulary; no tokenizer is needed to generate).

HEAD  -- common English function/content words, in rough frequency order.
BASE  -- 3,000 lower-case words and word pieces, 3-12 letters, taken once (in vocabulary order)
         from the pieces "\u2581xxx" of the Llama 2 SentencePiece vocabulary, HEAD words removed;
         mostly English, a few German/Spanish/code-ish pieces, so each is one Llama 2 token.
PRE, ROOT, SUF -- Latin-ish morphemes; gen_slimpajama.py builds the seed-dependent rare tail
         of the vocabulary from them ("reformation", "conductive", "exgressure", ...).
NONASCII -- a few words outside ASCII (accents, Greek, Cyrillic, CJK, emoji) placed in the
         rare tail so that the corpus contains multi-byte UTF-8.
No word contains a quote, a backslash, a control character or white space.
"""

HEAD = """
the of and to a in is that for it as was with be by on not he this are or his from at which but have
an they you were her she there one all we their been has would more if will when its who so no what
can out up some time them these may other than into only new two could about then also after first
any like our over such people now made many most years before through where well must between should
because each just those how very state way even world did much own down being under great back work
still life day while year same both last another know long part here little might three city used
make use good high system around end small since against however group school number during without
often never few public later come take water war country home found place form large second power
local national family government area took left early four set several given case including order
general among known within along best thus house least although line name held again right point old
river fact less upon began went until night based book head hand side become does film series member
music game team season league album song village town church street north south east west island
county district population station road company business market money price research study data
method result model paper theory process value function code file user version support service
program software page history language report development information
""".split()

BASE = """
con pro com des und der your par res app del per cont val get est que var ser return had comp pre
die dis man class using col add need def inst comm str want ent mod sol fol cre che pos int num dif
spe les den fil stat von inter bet ein sub don try tra sim cor acc const act som list import error
run reg see him hel rem att follow rel look problem van aut type cons question htt ver rec differ
bec gener loc una sur vari object cal pass ass vers los answer let test call pol dem por off find
ext trans read dist prov bel example incl string think tem sch start help char min mit produ gre ind
post dep array dur dat different check text every fin det android supp dans thr log son following
said show direct giv exp met element link something car true proper doc spec self table equ print
une mon dec med comple art als auf rep wur org cent solution create non ins main pour orig het else
das vol para play contain iss open http word change works een event field qui oper ist men mar aus
mult mat view void rest eff sign sing trying beg values key conne say param select famil pop doesn
term document tak arg sure real web current exist las null inform chang input ste och column tried
command prim stud server put wurde div ter partic row possible ide correct output image conf working
como match require vis called della request port instead why person private tot nel above writ https
build consider project repr files init prob bre cour too false fun enc mean won java cap eine access
appro mak ref contin cond expect charact size sich includ pla occ final perform present lar far able
path pres issue eas ask nom top happ better load understand child exec application struct cert
variable really inte static config plus hab mus count beh already done disc mil stand mag default
single ear fix pas implement always descri query ing mov got bas give pat seg index typ below record
imp rece nov sugg loop super dom write inv original seems next though script multi display lim prom
turn fran pub gen pod sum having avec fig bro success deb simple care database tre results bit bar
doing prof install position cannot coun ang appear princi mem date entre message nach gra tell bis
red thing sort sent going exact sie fine develop specific things thought added dest running refer
search wrong once source represent aff sein allow control update inside reason sever instance mer
effect similar mark content means getting leg clear href created button click polit seem intern stor
either initial valid sus due bei break actually design property custom ann ident organ hard exper
separ dev auch block map comput space echo width diff kind color character response node item
approach wer dal compon base idea dire rad dies near voor argument land names option links full situ
console etc came multiple total fre ten bes keep python conc via context sem eng mor cell inf zur
door miss simp hat certain cho adv looking times nicht nothing incre alg anything pot fut prop
please style probably poss client continu url tro cur era particular action include elements hum
functions height amb throw mot arch cas address bound statement level product course background ret
thread dos moment fur rather site caus short lead prote didn lot sat points enough length complet
upd defined offic autom brow serv remove whole zum tri memory begin construct respect apply format
lat reference calcul task princip einer till looks sont cost comment parameter yet away circ lines
mind range html window aux neg anal fri library durch host pap mais isn copy javascript sam frame
previous methods necess opt itself mill trad accept elect network assign dell body fue package light
cou mention deg convert bus seen histor sett title objects common changes extern available hom
account perm send returns expla nor target uit variables func himself ach std foot unter util sou
uma ant werden exception determ ess pri whether numbers shows face pur emp cla band exactly redu
makes required pers contains quite jed simply vor double resol dei anim period store worked happen
box close gran lie expected parte memb plan commun structure assum words days parent ben label edit
provide root tamb module directory free enter became expl making lui uses standard ever correspond
remain actual sind changed arr cam connection vom dim press esc thanks written fire origin graph mis
options php integr crit tog ses section behav estab obtain qual har fac hor remov wie natur random
roku others limit sil sav render zijn tag sense interest associ empty gro types noreferrer gives
save font alla says shall einem govern month important bra admin pract young parameters everything
returned folder kon guess comb hij author entire directly mass users component sobre sua filter
performance cult lik comme condition half rows hon together vill draw attempt indic needs normal
fields max deux built camp cases iter named nil special article complex dynam wird lib law needed
contr screen shown bad cast quant ren transform difference tit step capt collection move further
columns fixed children individ ord almost sig suggest figure catch tele matter handle json exam club
este classes infl adding fail location properties asked tab errors mal dro note setting fem saw pred
items werd sin feel oder mode auto template mess related follows wait low ill sal gru passed solve
meg connect round dir received ener define cle din introdu strong ele dont cause images sample sci
front missing opp sql taken err grand einen expression switch vector virt cover resp ont black
selected liter insert matrix pel former express third major grad believe status dou cin kom kil
feature started clos dig ital website controller jun aan browser soon week oct els foi models espe
device debug zwe aver habit pow src pattern sens avoid easy father updated alle deutsch white air
password big extra hold auth center across phys numer problems six vert header stream tor sept estim
decl gave player someone impro video exists complete session constant pack yes elle email pointer
regard mes delle force characters cross death takes details xml perfect nie relig machine past
regular provided univers gets nella terms events absol soft hope subject creating flow assert
distribution job extends signific quick wonder separate writing sym anyone definition fav according
pie activ stop prze age pretty recomm sud requ interface whose arm eyes seu automat stack compet
pair cant appreci learn indep pal satisf region friend desde installed wanted interpre included
altern border dup download members pay cer looked correctly esp desc questions abgerufen ris fort
various fast except environment conse necessary reading equal prem difficult unit replace heart talk
imm human frequ building fam delete fund particip syn lower zero sec fra failed slow nation info
decla sold mehr fait gew assume amount maxim social alt mentioned cette currently proof invol
relations comes direction stra played five coll suo ign led tim attack vel ihr attribute discuss
domain love obser soci individual deal outside tempor google sul modern win useful unique windows
distance nombre dar told calling future described noch branch fill obj tree wurden operator wrote
simpl nature wel mut therefore conver usually released jan letter push maybe dass mas likely
material longer egy inc mai global sel municip viol compos respons considered milit prevent repe exc
larg transl volt nur linear export natural cop taking dam issues prz parts mother container none
followed ple measure tout explain ens retr sequence roz features late additional flo algorithm
appears temp aussi pet cut track employ inde generate override lost room calls consist techn becom
premi rot football compar live equival behind media sono mysql rule jul mort generated scen closed
mount drop combin goes geb instru tool route float services immedi production jquery star observ
prefer constructor mac story symbol master ways pick depart math conditions gli operation mist
energy women meet syntax card principal dru territ somet sous logic cir han margin layout states
existing bij appe happens concern saying recogn clean easily jako forma offer subst ground leave tal
bottom popular anche located join token optim claim css priv ven epis engine fer rom prime touch dan
whom behavior strings pun register sometimes ment integer sound themselves settings norm runs
perhaps mol ans allowed turned bien extension specify stored parse answers heard ful categ guer
woman bool addition aber hier pob tables higher active description seemed myself menu moved datas
reach evalu sets achieve incor onder waren relative hours indeed removed speed fit nord split stru
official execute setup share minutes temper dens entry starting sto minim explicit bytes party leur
arguments lin tour nav properly scale brought role fond ges equation dit collect git vie educ spir
proget administr born ran profession activity scroll prove lang knew protected wor effic published
durante positive forward eer imag args indust wish angular occur loss bal career fall coming died
abs inner trav cel stuff situation purpose upload showing completely proced thank tom examples
remember possib detect poor century login otherwise groups shell records changing deep plot visit
bug opened repla dark resource watch release learning allows whatever pages compiler unless discover
regex wife fair seiner grow hatte rate central beaut advance hands lay sun steps jud boot nem pen
average comments bed meaning extract computer affect species hash keys marzo interpret coordin
modify termin cred mie connected compile cat alloc solo alert feb rev blo president multip seine
spect redirect walk training fetch execut spring asking testing progress phot ones rout agosto
choose systems contra beginning served jest continue easier cos transfer finns constru pain
specified brit counter sowie dess tras grande passing giving launch foreach buffer mix meant kan
solutions belong grid requires teach square rules bur eing nam tip scope exit vict approxim uno
framework generally hundred divers gal feet virtual recommend versions helps occup editor seconds
obvious gegen til operations callback sen associated containing practice architect anni contact
bring concept supported arriv probability assist tests king security basic novembre peu tur ideas
ces premier byte segu external secret potential pero sed arrays asp gem formula sac plugin serie
matches worth cache felt commune surface candid depends influ towards rank components checked dead
hit equivalent appropri primer appar knowledge trigger core mid finally especially tut receive neigh
radio driver saved padding mur gar familjen nationale placed signal progetti forms messages dels
compr larger sea mechan sans communic pra ain boolean effort emb prima hour anci pan lug deploy
slight morning compare blue middle shared eines experience await requests impos constraint
significant million dalla thinking interval liv broad couple techni goal explan voice sor zwei
factor ligne suf personal adm god dynamic maintain choice flag haven produced delet hot months tod
cui eigen immediately online namespace mond defin doubt investig stage becomes independent analysis
sorry supposed degree desired len alone applied mars externes esta pou reached articles trouble
equip internal async appeared maximum announ latter platform dra capital solved niet loaded mayo bek
conduct wieder manually native yourself prior cit treat meas clar layer rat stato naar appreciated
przez upper printf continued nodes nice undefined binary remote quel align places primary conv
visual intent board cru greater inn picture obtained lors mont civil construction edge experiment
beskre ber wouldn react category artist ook declar mach rock esterni gold partial weight spr thous
gone rend answered daugh rect yield lock beskrevs speak trois odd gest produce waar finished adapt
deriv ship opin suppose worden vez econom orient solid cart cab twe naz underarter recent net
resources cele lic benef serial miles entered includes straight nos www commer girl suggested
zwischen handler vid established sit inher puis sist favor entity returning liber bind friends
community api dann vous drive swe amer mine avait increase accur sex listade dialog duplicate voc
green hidden diag train stay foo accom hers ready visible smaller perfectly proposed degli ich
volume sport cook expand altri wet fel sufficient nue raz hasta wire relevant partir ago domin boy
plant encoding throws interesting demon office versch dieser students abril declared posted weak
champion fully contract ale disk games finite crash brother colon wood gent contents compan jou kept
provides kter calculate hence score determine spaces peut appoint hop destroy race rid negative cro
kle pull appropriate manner relation execution bul pil leading contro channel ett forces explanation
commands rich recon shape election prep infin books pom nas tags executed ball ainsi hear pure embed
married prec recurs respectively grav przy charge applications sudden dot donde drag invalid finish
feed succ cual distinct loading rail student notice sla guard fell absolute views surr stood
attributes moving basis oraz seit definit piece formed earth ville centre helpful pip describe
checking manager decided fif fails kernel proceed fuer living successfully faster contre prison
autor provin naam gesch tools ult couldn predict remark strange flex enero alors spl dram division
efficient vier spirit dici nous blev performed focus attention agre divis march phase phil caused
fight deutscher dictionary political circle transport replaced soort sequ bud suc illustr primera
storage params terminal holds nad octubre hus contiene plain agree starts alternative organiz
completed carry depending insp defe designed voir partie studio jour besch stated sleep temps scal
ast opening programming letters profile beyond chart herself jug playing usage managed daughter hol
ihn comun truth implemented anyway joined wild juin dataset miejs edited seeing procedure signed
externos disapp consult wind suffer resolve tax actions naj chance dol env basically displayed
depend validation interested correl dedic lists earlier fear realiz hal instances susp partition
director nearly sir janvier policy observed familie developed reply dall desp pes disput trick ped
parallel chem twice username journal batt certainly reported court sources conserv internet carried
ave julio depuis suggestion demonstr wasn phone indu vot espa bin junio linked enable density
italiano health riv somewhere delay diciembre commit headers processing faire hun review limited
serve kann chief scene uniform febrero quickly cells mayor safe veloc fle foreign magn modified
military monde bank continuous gel physical introduced presented finding intended juillet successful
charg gep warning theorem entirely dopo sudo septiembre micro trop oppos offset regia minimum helped
bere agr devices bot firm writer ring mel nome pobla woj resist remains trat restrict previously
culture accepted hous selection decre succeed shouldn pix projects latest references erst kam jusqu
impossible pier trust products nested strength announced adopt cli lem sending ajax noviembre weiter
septembre viv queries unable erh ersten fragment wide suff dut broken preced compared strict perman
tous geme extrem heavy avril anti octobre dear opinion fish reflect trib clearly saf relationship
killed wid panel ruby aren suite minor xmlns vic eight conflic explicitly reprodu remained byl
detail mouse shift btn pul statements prompt debut queue reci sta tested oficial verw pare aware
effects propos novel django transition happened beautiful neither libraries hide aspect forget cloud
proc gan cours conj reasons reader tasks ric subsequ declare protocol animation confused enabled
mand algebra musical trace scient forgot older uns vec blank dict confirm demand minist usual
tutorial spread convers roll symmet axis matching food vend drei ended involved danger chain nap
vent threads eerst migr arbitr roman annot hem packages pays cada verb submit san spot news dia
accompl ihm append lab recover education happy guerra ensure publish repository ger unknown
resulting bor poet hist today buttons sni union zich quando abstract advice icon travel batch ihre
assigned award ciudad cluster sheet wondering represented seven sister luck remaining ban andere
jedoch listed loro knows socket tar gentle cmd wordt fost dimension highest tres circum causes
influence fat entr binding dependencies talking conven entries bits familiar army sender beim compat
occurs diese creates showed protest squad essere slightly reduce generic occasion avant respond maj
runtime possibly stri mir twenty sounds determined wall reset appearance fois nell resolution fot
throughout identity janu imper infer dates distingu presence leaving establish maar fab wetenschapp
torn largest percent img roce polynomial integral areas hyp proxy escape mistake processes arms msg
batter decor eventually pag strugg rela labor jap husband etwa prepar lack hogy comparison
increasing gef incorrect assuming casa suiv quart professional tiene accomp dise compute languages
upp cuando haben dri seinem combination soll movement harm seinen reve shot repeated recently cha
tend units tan docker audio coordinates replied anc infinite adjust merge poster exhib ordered
existence lemma mad elimin spent fellow thousand extended blood mapping nomin manifest pens rit
filename filled raised mobile temperature somehow kommun chosen horse originally citt encore capture
boundary rights happening science behaviour implies recorded todo scenario concent dirig gas kap
sistema surv canvas guarante mail suggestions waiting sentence linux noticed alter battle geld docs
retrieve trab laugh pela somewhat inline modules gradu aqu putting purch smooth lived tells decision
dependency ends ios excel eleg experien directed camb folg conce advantage vir span zone attach
management raw mission camera honor appointed covered tid encuent failure squ paint serious cursor
discussion cried rewrite gepublic equations plane acqu angle trees documents implements chap magnet
gepubliceerd highly leurs dress restart constitu derived stad tourn particularly plusieurs wave alc
logs permission soul wants guide viene evidence occurred ble segment players stuck formatt peace
clim oblig pros powers transaction causing depth rare bon specifically stars configure agent
explained coefficient vida rob frances ideal todos pelo faith fresh propri veh kar mathemat fon
frequency kor sys impact apt motion autres bash celebr dove paths inj cry marked lan teams pubblic
countries spin pse theme blocks glad manage schema whenever discovered prefix rapid lleg attached
stock inputs learned police eye repres fest nouve extend deze motor resid finale pairs evening conn
flash minute ved seus franc rac quality allem incorpor technique minister curl maps independ compact
labels stan removing stopped refresh founded fal decide understood jur capac enemy
""".split()

PRE = """re un in dis pre con com de ex pro sub trans inter over under out mis non anti auto co en
im per post semi super""".split()

ROOT = """form struct port press vent duct spect mit tract graph log phon scrib vis dict cap cept fer
mov pend pos sent tain tend ven vers act ag cid clud cogn cred cur fac fect fin flect flu gen grad
gress ject jud junct lect loc mand mar med min mod mort nat nom not pact pass path ped pel plic ply
pon prim quer quest rupt sci sect serv sign sist spir stat tact temp ten term test tort tribut val
vert vid viv voc volv bound build cast craft draw field land light line mark hold point stand stock
stone ward work wood way frame ground head house side""".split()

SUF = """ion ation able ible ive er ed ing ment ness ity al ous ly ful less ize ism ist ure ance ence
ant ent ory ary ic ical s es""".split()

NONASCII = """café naïve résumé über zürich straße façade déjà señor niño crème año jalapeño
smörgåsbord fiancée garçon łódź český köln ψυχή λόγος αλφα данные москва привет 東京 日本語 数据
한국어 עברית عربي हिन्दी 😀 🚀 ★ → ∑ µs""".split()
